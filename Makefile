# The two commands of the README (`make demo`, `make test`) install what they need first.
PYTHON := .venv/bin/python

.PHONY: install demo demo-det demo-probe test test-fast bench

install:
	bash tools/install_env.sh

DEMO_CONFIG := configs/seg/demo/upernet_internvit-tiny_1xb8-500it_synthetic-ade-112x112.py
DEMO_DIR := work_dirs/demo

# Generate the synthetic ADE20K-layout data once, train the tiny InternViT + UperNet on the CPU,
# evaluate with mmseg's IoUMetric (prints the mIoU and the per-class table, writes it as CSV), write one
# picture: image | ground truth | prediction, with a legend.
demo: install
	$(PYTHON) tools/make_synthetic_ade.py --out data/synthetic_ade
	$(PYTHON) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PYTHON) tools/test.py $(DEMO_CONFIG) $(DEMO_DIR)/iter_500.pth --work-dir $(DEMO_DIR)
	$(PYTHON) tools/infer.py data/synthetic_ade/images/validation/ADE_val_00000001.jpg $(DEMO_CONFIG) \
		$(DEMO_DIR)/iter_500.pth --gt data/synthetic_ade/annotations/validation/ADE_val_00000001.png \
		--out $(DEMO_DIR)/overlay.png --scale 4

DET_CONFIG := configs/det/demo/mask-rcnn_internvit-tiny_1xb4-12e_synthetic-coco-128x128.py
DET_DIR := work_dirs/demo-det

# The detection demo: synthetic COCO-layout data once, a tiny InternViT Mask R-CNN trained on the CPU,
# evaluated with mmdet's CocoMetric (prints bbox and segm AP); one picture: image | ground-truth boxes |
# detections, with a legend.
demo-det: install
	$(PYTHON) tools/make_synthetic_coco.py --out data/synthetic_coco
	$(PYTHON) tools/train.py $(DET_CONFIG) --work-dir $(DET_DIR)
	$(PYTHON) tools/test.py $(DET_CONFIG) $(DET_DIR)/epoch_12.pth --work-dir $(DET_DIR)
	$(PYTHON) tools/infer.py data/synthetic_coco/val2017/000000000001.jpg $(DET_CONFIG) $(DET_DIR)/epoch_12.pth \
		--gt data/synthetic_coco/annotations/instances_val2017.json --out $(DET_DIR)/detections.png --scale 4

PROBE_CONFIG := configs/seg/demo/probe-sweep_internvit-tiny_1xb4-120it_synthetic-ade-112x112.py
PROBE_DIR := work_dirs/demo-probe

# The probing study on the CPU: the demo's InternViT (trained first when work_dirs/demo has no checkpoint),
# frozen and probed at every block x 2 learning rates x BN or not = 16 linear probes in ONE run, each scored
# by mmseg's IoU; then the study's table (markdown, CSV) and plot under work_dirs/demo-probe/.
demo-probe: install
	$(PYTHON) tools/make_synthetic_ade.py --out data/synthetic_ade
	[ -f $(DEMO_DIR)/iter_500.pth ] || $(PYTHON) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PYTHON) tools/train.py $(PROBE_CONFIG) --work-dir $(PROBE_DIR)
	$(PYTHON) tools/analysis/probe_report.py $(PROBE_DIR)

test: install
	$(PYTHON) -m pytest -q tests

test-fast: install
	$(PYTHON) -m pytest -q -m "not slow" tests

bench: install
	$(PYTHON) tools/analysis/benchmark_backbone.py
