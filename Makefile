# edge: the two commands a new user needs are `make demo` and `make test`.
# Both call `make setup`, which installs the apt packages and the venv idempotently.

PY      := /usr/bin/python3
VENV    := .venv
VPY     := $(VENV)/bin/python
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := mosquitto mosquitto-clients socat python3-venv python3-gi \
	gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp \
	ffmpeg fonts-dejavu-core i2c-tools systemd chromium nodejs sslscan rauc squashfs-tools dosfstools mtools openssl
STAMP_APT  := $(VENV)/.apt-$(shell echo $(APT_PKGS) | md5sum | cut -c1-8)
STAMP_PIP  := $(VENV)/.pip-$(shell cat pyproject.toml constraints.txt 2>/dev/null | md5sum | cut -c1-8)
# the npm `onvif` package (what UniFi Protect bundles), a test peer: pinned by its lock file
NPM_DIR    := tests/onvif-npm
STAMP_NPM  := $(NPM_DIR)/node_modules/.stamp-$(shell cat $(NPM_DIR)/package-lock.json 2>/dev/null | md5sum | cut -c1-8)

.PHONY: setup demo test bench check-config clean image image-test image-tools bundle
setup: $(STAMP_APT) $(STAMP_PIP) $(STAMP_NPM)

$(STAMP_APT):
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages: $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@[ -x $(VPY) ] || $(PY) -m venv --system-site-packages $(VENV)
	@rm -f $(VENV)/.apt-*; touch $@

$(STAMP_PIP): $(STAMP_APT)
	$(VPY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	@rm -f $(VENV)/.pip-*; touch $@

$(STAMP_NPM): $(STAMP_APT)
	@command -v npm >/dev/null || { echo "installing apt package: npm"; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends npm; }
	cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(NPM_DIR)/node_modules/.stamp-*; touch $@

demo: setup
	$(VENV)/bin/edge demo

test: setup
	$(VPY) -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in bench/*.py; do $(VPY) $$b || exit 1; done

# The SD card image (image-build/README.md). Its tools are installed here, not by `setup`:
# the test suite does not need them.
IMAGE_TOOLS := mmdebstrap qemu-user-static binfmt-support arch-test qemu-system-arm qemu-utils \
	dosfstools mtools e2fsprogs fdisk zstd rauc squashfs-tools openssh-client
IMAGE_OUT ?= image-build/out

image-tools:
	@missing=$$(for p in $(IMAGE_TOOLS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing image build tools: $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

image: setup image-tools
	$(SUDO) image-build/build.sh $(IMAGE_OUT)

# A signed RAUC update bundle from the last `make image` (image-build/README.md, "Updates").
# RAUC_KEY/RAUC_CERT/RAUC_KEYRING: the production key; without them, the build's development key.
bundle: setup image-tools
	@[ -s $(IMAGE_OUT)/slot-root.ext4 ] || $(MAKE) image
	$(SUDO) image-build/bundle.sh $(IMAGE_OUT)

image-test: setup image-tools
	$(VPY) image-build/image_test.py --out $(IMAGE_OUT) $(IMAGE_TEST_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info $(NPM_DIR)/node_modules
