#!/bin/sh
# Recompile every shaders/vulkan/*.comp into the committed *.spv (SPIR-V 1.3, Vulkan 1.1).
# tests/test_vulkan_backend.py checks that the committed .spv match these flags and sources.
set -e
cd "$(dirname "$0")"
for src in *.comp; do
    if ! log=$(glslangValidator -V --target-env vulkan1.1 -o "${src%.comp}.spv" "$src"); then
        echo "$log" >&2
        exit 1
    fi
done
