# make demo: set up .venv, install artfx, run real pipelines on samples/ (images land in demo-out/)
# make test: the same set-up, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.artfx-installed
OUT    := demo-out

.PHONY: demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,web,ray]'
	$(BIN)/python -m artfx.warmup
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(BIN)/artfx pipeline quantize:k=8,slic:n=600 samples/coffee.png -o $(OUT)/coffee-poster.png
	$(BIN)/artfx quantize samples/chelsea.png -k 6 --dither floyd-steinberg --palette-out $(OUT)/chelsea-palette.gpl -o $(OUT)/chelsea-6-colours.png
	$(BIN)/artfx primitive samples/astronaut.png -n 150 --shape combo -o $(OUT)/astronaut-shapes.png --svg $(OUT)/astronaut-shapes.svg --gif $(OUT)/astronaut-shapes.gif
	@# the style step at 512 px (its default size), bf16 where the CPU has it, 50 iterations a scale instead of 100:
	@# about a minute and a half on a 2-core CPU (the defaults take about three there), seconds on a GPU
	$(BIN)/artfx pipeline quantize,slic,style:iterations=50 samples/tubingen.jpg -o $(OUT)/tubingen-starry.png
	@# a short stylised clip: 12 frames panning across a photo, 112 px wide, 20 iterations for the first frame
	@# and 10 for each next one (about a minute on a laptop CPU; VGG-19 costs ~0.4 s an iteration even there)
	$(BIN)/python scripts/make_clip.py samples/tubingen.jpg $(OUT)/tubingen-pan.mp4 --frames 12 --width 112
	$(BIN)/artfx pipeline style:iterations=20 $(OUT)/tubingen-pan.mp4 -o $(OUT)/tubingen-pan-starry.mp4
	@echo "demo images are in $(OUT)/"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,web,bench]'
	$(BIN)/python scripts/bench_classical.py --quick
	$(BIN)/python scripts/bench_primitive.py --quick
	$(BIN)/python scripts/bench_style.py --quick

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
