#!/bin/sh
# Install headless Chromium (Debian packages) for the report's browser test; no-op when present.
set -eu
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
