#!/usr/bin/env bash
# The engine on a single GPU (an H100 or H200) in one prepared run: benchmarks/accelerator_check.py.
#
#   bash benchmarks/accelerator_check.sh --prepare       # here, with the package index reachable: the dry
#                                                        # run's test, then .accel/
#   bash benchmarks/accelerator_check.sh                 # on the GPU machine (figures into $OUT)
#   bash benchmarks/accelerator_check.sh --cpu-dry-run   # the same code paths with tiny sizes, on CPU
#
# On the GPU machine the packages its image lacks are installed from the carried wheels into a private
# directory (never into the image), and the carried assets become the asset cache; the SmolLM2 GGUF
# arrives in two parts (benchmarks/accelerator_carry.py says how) and is joined and checked here.
# PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"

if [[ "${1:-}" == "--prepare" ]]; then
  # The check's own code first, with tiny sizes on this CPU: a broken step should not cost GPU time.
  "$py" -m pytest -q -p no:cacheprovider tests/test_accelerator_check.py --run-gpu-dry-run
  exec "$py" benchmarks/accelerator_carry.py --prepare
fi

dry=0
for arg in "$@"; do [[ "$arg" == --cpu-dry-run ]] && dry=1; done

if [[ $dry == 0 ]] && compgen -G ".accel/wheels/*.whl" > /dev/null; then
  site=/tmp/llm2llm_jax_site
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .accel/wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [[ $dry == 0 && -d .accel/cache ]]; then
  export LLM2LLM_JAX_CACHE="$PWD/.accel/cache"
  "$py" benchmarks/accelerator_carry.py --assemble || true  # without the GGUF the check skips what needs it
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

out="${OUT:-runs/accelerator_check}"
mkdir -p "$out"
"$py" benchmarks/accelerator_check.py --out "$out" "$@" 2>&1 | tee "$out/accelerator_check.log"
