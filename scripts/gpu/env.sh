# Sourced by scripts/gpu_check.sh on the GPU machine (bash): unpacks the Debian packages
# scripts/gpu/stage.sh put in .device/debs into a private prefix and points CMake, the
# compiler and the loader at them. PyTorch's LibTorch is found by the build itself
# (CC_TORCH_PYTHON), and its CUDA libraries through the binaries' RUNPATH. Safe to source
# more than once; nothing outside CC_DEPS_PREFIX is touched.
_cc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_cc_prefix=${CC_DEPS_PREFIX:-/opt/cc-deps}
_cc_debs=$_cc_root/.device/debs
if ! compgen -G "$_cc_debs/*.deb" >/dev/null; then
  echo "env.sh: no staged packages in $_cc_debs: run scripts/gpu/stage.sh on the CPU machine and carry .device" >&2
  return 1
fi
if [ ! -f "$_cc_prefix/.unpacked" ] || [ "$_cc_debs" -nt "$_cc_prefix/.unpacked" ]; then
  mkdir -p "$_cc_prefix"
  for _cc_deb in "$_cc_debs"/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$_cc_deb" "$_cc_prefix"
    else  # no dpkg (not a Debian-family image): a .deb is an ar archive around data.tar.*
      (cd "$(mktemp -d)" && ar x "$_cc_deb" && tar -xf data.tar.* -C "$_cc_prefix")
    fi
  done
  touch "$_cc_prefix/.unpacked"
fi
_cc_lib=$_cc_prefix/usr/lib/x86_64-linux-gnu
export CMAKE_PREFIX_PATH="$_cc_prefix/usr;$_cc_lib/cmake;$_cc_prefix/usr/share/cmake${CMAKE_PREFIX_PATH:+;$CMAKE_PREFIX_PATH}"
export PKG_CONFIG_PATH="$_cc_lib/pkgconfig:$_cc_prefix/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# The .pc files and some CMake configs name /usr/include and /usr/lib: the compiler and
# linker search paths cover the relocated copies.
export CPATH="$_cc_prefix/usr/include${CPATH:+:$CPATH}"
export LIBRARY_PATH="$_cc_lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$_cc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -z "${CUDACXX:-}" ]; then
  CUDACXX=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  export CUDACXX
fi
unset _cc_deb
