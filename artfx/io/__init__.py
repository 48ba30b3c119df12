"""Reading and writing images: the edges of every pipeline, one module per concern.

- :mod:`artfx.io.read`: decoding (EXIF orientation, alpha, 16-bit, greyscale/palette/CMYK, the bomb guard);
- :mod:`artfx.io.colour`: embedded ICC profiles converted to sRGB;
- :mod:`artfx.io.write`: encoding by suffix (PNG, JPEG, TIFF, WebP, BMP, GIF animations);
- :mod:`artfx.io.png`: PNG text chunks (where recipes live);
- :mod:`artfx.io.files`: atomic writes and the inputs that must never be overwritten;
- :mod:`artfx.io.resize`: resizing float images.

Stages only ever see a float32 (H, W, 3) sRGB array in [0, 1]; everything odd about files is handled here.
OpenCV, tifffile and ImageCms are imported inside the functions that need them: importing artfx stays cheap.
"""

from artfx.io.files import atomic_write, check_writable, same_file, sha256_file
from artfx.io.png import RECIPE_KEY
from artfx.io.read import Picture, check_pixels, read_image, read_recipe
from artfx.io.resize import resize_long_side, resize_to
from artfx.io.write import FORMATS, encode_image, gif_writer, output_format, write_image

__all__ = [
    "FORMATS", "RECIPE_KEY", "Picture", "atomic_write", "check_pixels", "check_writable", "encode_image",
    "gif_writer",
    "output_format", "read_image", "read_recipe", "resize_long_side", "resize_to", "same_file", "sha256_file",
    "write_image",
]
