# The two commands of the quick start: `make demo` and `make test`. Both install what is missing first.
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)

.PHONY: install kube image demo test test-unit lint bench clean

install:
	bash scripts/install.sh

# kube-apiserver + kube-controller-manager from Debian's source package, etcd from Debian; cached under
# ~/.cache/metallb-fast so only the first run pays for the build.
kube:
	bash scripts/install-kube.sh

# The OCI image (deploy/Dockerfile) from Debian's mirror: mmdebstrap base, podman import, buildah build; cached under
# ~/.cache/metallb-fast/image and rebuilt only when its inputs change (docs/image.md).
image: install
	bash scripts/image.sh

demo: install kube
	$(VENV)/bin/metallb-fast demo
	$(VENV)/bin/metallb-fast demo --cluster

test: install kube
	$(PY) -m ruff check metallb_fast tests bench
	$(PY) -m mypy metallb_fast
	$(PY) -m pytest -p no:cacheprovider -ra tests

test-unit: install
	$(PY) -m pytest -p no:cacheprovider -ra tests/unit

lint: install
	$(PY) -m ruff check metallb_fast tests bench
	$(PY) -m mypy metallb_fast

bench: install
	$(PY) bench/arp_flood.py
	$(PY) bench/control_plane.py

clean:
	rm -rf build *.egg-info metallb_fast/dataplane/_ring*.so metallb_fast/testing/_flood*.so ext/ring.c ext/flood.c \
		ext/wire_contract.pxd
