#!/usr/bin/env bash
# Make a release from git: the source tarball, the release rockspec and the
# source rock, all named after the one version in CMakeLists.txt
# (project(... VERSION X.Y.Z)).
#
#   scripts/release.sh [--ref REF] [OUTDIR]      (OUTDIR default: dist)
#
#   OUTDIR/lua-p0f-X.Y.Z.tar.gz    git archive of REF (default HEAD): tracked
#                                  files only, so no build files
#   OUTDIR/p0f-X.Y.Z-1.rockspec    p0f-scm-1.rockspec with version X.Y.Z-1 and
#                                  source = that tarball (relative URL) + md5
#   OUTDIR/p0f-X.Y.Z-1.src.rock    luarocks pack of that rockspec
#
# The relative URL resolves from OUTDIR; to publish, upload the tarball and
# point source.url at it (the md5 stays valid). p0f-scm-1.rockspec stays
# the development rockspec.
set -euo pipefail
cd "$(dirname "$0")/.."

ref=HEAD
if [ "${1:-}" = --ref ]; then
  ref=${2:?--ref needs a git revision}
  shift 2
fi
out=${1:-dist}

version=$(sed -n 's/^project(lua-p0f VERSION \([0-9][0-9.]*\)[ )].*/\1/p' CMakeLists.txt)
if [ -z "$version" ]; then
  echo "release.sh: no project(lua-p0f VERSION X.Y.Z) in CMakeLists.txt" >&2
  exit 1
fi
# The version inside REF must be the one we name the files after.
if ! git show "$ref:CMakeLists.txt" | grep "^project(lua-p0f VERSION ${version}[ )]" >/dev/null; then
  echo "release.sh: $ref's CMakeLists.txt is not at version $version (commit it first)" >&2
  exit 1
fi

name=lua-p0f-$version
rock=p0f-$version-1
mkdir -p "$out"
out=$(cd "$out" && pwd)

git archive --format=tar --prefix="$name/" "$ref" | gzip -n -9 >"$out/$name.tar.gz"
md5=$(md5sum "$out/$name.tar.gz" | cut -d' ' -f1)

# The release rockspec: the scm one with its version and source replaced.
lua5.4 - "p0f-scm-1.rockspec" "$out/$rock.rockspec" "$version-1" "$name" "$md5" <<'LUA'
local src, dst, version, name, md5 = table.unpack(arg)
local f = assert(io.open(src))
local text = f:read("a")
f:close()
local n1, n2
text, n1 = text:gsub('\nversion = "scm%-1"\n', '\nversion = "' .. version .. '"\n', 1)
text, n2 = text:gsub("\nsource = %b{}\n", string.format(
  '\nsource = {\n  url = "%s.tar.gz",\n  md5 = "%s",\n  dir = "%s",\n}\n', name, md5, name), 1)
assert(n1 == 1 and n2 == 1, "p0f-scm-1.rockspec: no version or source line to replace")
f = assert(io.open(dst, "w"))
f:write(text)
f:close()
LUA

# luarocks pack fetches the source from inside a temporary directory, where
# a relative URL does not resolve: pack from a copy that names the tarball
# by its absolute path, then put the real rockspec into the rock.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^  url = \"$name.tar.gz\",\$|  url = \"file://$out/$name.tar.gz\",|" "$out/$rock.rockspec" >"$tmp/$rock.rockspec"
grep -q "file://" "$tmp/$rock.rockspec"
(cd "$tmp" && luarocks pack "$rock.rockspec" >/dev/null)
cp "$out/$rock.rockspec" "$tmp/"
(cd "$tmp" && zip -q "$rock.src.rock" "$rock.rockspec")
mv "$tmp/$rock.src.rock" "$out/"
test -s "$out/$rock.src.rock"
printf '%s\n' "$out/$name.tar.gz" "$out/$rock.rockspec" "$out/$rock.src.rock"
