#!/usr/bin/env bash
# Download, HERE (with network), the wheels that the GPU machine's image lacks for a MinAtar / classic run,
# for its interpreter (CPython 3.12, manylinux x86_64). benchmarks/device_check.sh installs them there offline.
#
#     bash benchmarks/fetch_wheels.sh            # -> benchmarks/wheels/*.whl (git-ignored)
#
# The device tool copies only tracked and non-ignored files, so pass the folder explicitly:
#     run(command="bash benchmarks/device_check.sh", carry=["benchmarks/wheels"])
#
# Which packages: the image has jax/jaxlib 0.11.2 (+ CUDA 13 plugin), flax, optax, chex, orbax-checkpoint, numpy,
# matplotlib, rich, tqdm, tensorboard, pytest (and their dependencies: scipy, tensorstore, msgpack, PyYAML, etils,
# pillow, ...). It lacks gymnax, flashbax and tyro. What those need beyond the image, found by importing
# purejax_ad.train / .trainer / .envs / .run here and mapping sys.modules to distributions:
#   gymnax    -> gymnasium (-> cloudpickle, farama-notifications), seaborn (gymnax.environments.misc.pong imports it
#                at module level; -> pandas -> pytz, tzdata, python-dateutil), six (imported, undeclared)
#   tyro      -> docstring-parser, typeguard, typing-extensions
#   flashbax  -> (chex, flax, tensorstore, typing-extensions: all on the image)
# six, python-dateutil and typing-extensions are very likely on the image already (matplotlib / flax need them);
# they are downloaded as a safety net and device_check.sh installs a wheel only when its distribution is missing.
# Not downloaded: jaxlib (85 MB), warp-lang (149 MB), mujoco / mujoco-mjx / playground / brax (DMC only; the DMC
# imports are lazy), rliable / pandas-based evaluation extras beyond what seaborn needs.
# Versions are the ones pinned in pyproject.toml / tested in /work/venv311.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=benchmarks/wheels
LIMIT_MIB=${LIMIT_MIB:-48}
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
PKGS=(
  gymnax==1.0.1
  flashbax==0.1.3
  tyro==1.0.16
  gymnasium==1.3.0
  cloudpickle==3.1.3
  farama-notifications==0.0.6
  seaborn==0.13.2
  pandas==2.3.3
  pytz==2026.6
  tzdata==2026.6
  docstring-parser==0.18.0
  typeguard==4.6.1
  six==1.17.0
  python-dateutil==4.0.0
  typing-extensions==4.16.0
)
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  -d "$DEST" "${PKGS[@]}"
ls -l "$DEST"
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
mib=$(python3 -c "print(f'{$total / 2**20:.1f}')")
echo "wheels: $(ls "$DEST"/*.whl | wc -l) files, $mib MiB (limit $LIMIT_MIB MiB; 64 MiB travel with a job, the repo included)"
if [ "$total" -gt $((LIMIT_MIB * 1024 * 1024)) ]; then
  echo "ERROR: wheels exceed $LIMIT_MIB MiB" >&2
  exit 1
fi
