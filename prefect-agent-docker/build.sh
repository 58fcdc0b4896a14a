#!/bin/sh
# Build steps of the Dockerfile's builder stages. Never copied into a final image.
#
#   build.sh create-env PREFIX PYTHON_VERSION LOCK   conda env (conda base) or venv (plain base)
#   build.sh install-locked PREFIX LOCK [OVERRIDE...]
#   build.sh slim PREFIX                        drop test suites; bytecode for hot paths only
#   build.sh strip-native PREFIX                debug symbols out of shared libraries; no
#                                               C/Cython sources
#   build.sh install-bootstrap-wheel PREFIX WHEEL  the bootstrap, reproducibly
#   build.sh install-lume-services PREFIX LOCK REPOSITORY VERSION PREFECT_VERSION
#   build.sh share-with-group PREFIX            group 0 may do what the owner may (OpenShift)
#   build.sh sbom PREFIX OUTPUT VERSION TARGET BASE   CycloneDX SBOM of PREFIX and the base
#   build.sh wrap-commands PREFIX DIR           root-owned wrappers of PREFIX/bin's commands
#   build.sh record-optional-imports PREFIX     the core's optional imports (extras check)
#   build.sh with-ca COMMAND...                 run COMMAND trusting the extra CA, if any
#
# The extra CA certificate (for TLS-intercepting proxies) arrives as the BuildKit secret
# "extra_ca" at /run/secrets/extra_ca. It is appended to a temporary copy of the system
# bundle that is deleted when the step ends, so it never lands in a layer.
set -eu

EXTRA_CA=/run/secrets/extra_ca

die() {
    echo "build.sh: error: $*" >&2
    exit 1
}

with_ca() {
    if [ -s "$EXTRA_CA" ]; then
        bundle=$(mktemp /tmp/ca-bundle.XXXXXX)
        trap 'rm -f "$bundle"' EXIT INT TERM
        for system_bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
            if [ -s "$system_bundle" ]; then
                cat "$system_bundle" >>"$bundle"
                break
            fi
        done
        cat "$EXTRA_CA" >>"$bundle"
        # pip, requests, uv, conda and urllib each read a different variable.
        SSL_CERT_FILE=$bundle PIP_CERT=$bundle REQUESTS_CA_BUNDLE=$bundle \
            CONDA_SSL_VERIFY=$bundle "$@"
    else
        "$@"
    fi
}

create_env() {
    prefix=$1 python_version=$2 lock=$3
    if command -v conda >/dev/null 2>&1; then
        echo "build.sh: conda base: creating conda env $prefix with python=$python_version" >&2
        conda create --yes --quiet --prefix "$prefix" "python=$python_version" pip
        conda clean --all --yes --quiet
    else
        interpreter=$(command -v "python$python_version" || true)
        [ -n "$interpreter" ] || die "the base image has no conda and no python$python_version;" \
            "use a conda base or set PYTHON_VERSION to the base's Python ($(python3 --version 2>&1))"
        echo "build.sh: plain base: creating venv $prefix with $interpreter" >&2
        "$interpreter" -m venv "$prefix"
    fi
    # uv installs everything else; bring the locked uv in with the env's own pip.
    uv_pin=$(grep -E '^uv==' "$lock")
    [ -n "$uv_pin" ] || die "no uv pin in $lock"
    "$prefix/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check "$uv_pin"
}

install_locked() {
    prefix=$1 lock=$2
    shift 2
    overrides=$(mktemp)
    for override in "$@"; do
        echo "$override" >>"$overrides"
    done
    requirements=$(mktemp)
    if command -v conda >/dev/null 2>&1; then
        # py-rattler (80 MB) only stands in for a conda CLI; this base has one.
        grep -v '^py-rattler==' "$lock" >"$requirements"
    else
        cp "$lock" "$requirements"
    fi
    "$prefix/bin/uv" pip install --python "$prefix/bin/python" \
        --requirement "$requirements" --override "$overrides"
    rm -f "$overrides" "$requirements"
}

slim() {
    prefix=$1
    site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # The scientific stack ships its test suites (65 MB); nothing imports them at run time.
    for package in numpy scipy matplotlib mpl_toolkits dask distributed tornado h5py pandas; do
        if [ -d "$site/$package" ]; then
            find "$site/$package" -depth -type d \( -name tests -o -name test \) \
                -exec rm -rf {} +
        fi
    done
    # Bytecode for the modules that start the bootstrap, an agent or a flow run (60 of 150 MB):
    # the rest compiles on first use, into the container, as the runtime user owns the env.
    find "$prefix" -name __pycache__ -type d -prune -exec rm -rf {} +
    same_mtimes "$prefix"
    "$prefix/bin/python" "$(dirname "$0")/warm-imports.py"
}

# Wheels ship their shared libraries with symbol tables (a third of their size) and their
# Cython sources (box, fontTools); nothing at run time reads either. strip --strip-unneeded
# keeps the dynamic symbols that loading needs. binutils comes from the base's own package
# manager into this builder stage only; a base without one keeps its libraries as they are.
strip_native() {
    prefix=$1
    if ! command -v strip >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends \
            binutils >/dev/null || echo "build.sh: no binutils: libraries left unstripped" >&2
    fi
    if command -v strip >/dev/null 2>&1; then
        before=$(du -sm "$prefix" | cut -f1)
        # Not the libraries auditwheel vendored into <package>.libs/: patchelf rewrote their
        # program headers, and strip then leaves them unloadable ("ELF load command
        # address/offset not page-aligned"); stripped, they would save 5 MB.
        find "$prefix" -type f \( -name '*.so' -o -name '*.so.*' \) -not -path '*.libs/*' \
            -exec strip --strip-unneeded {} +
        echo "build.sh: stripped shared libraries: $before MB -> $(du -sm "$prefix" | cut -f1) MB" >&2
    else
        echo "build.sh: no strip on this base: shared libraries left as the wheels ship them" >&2
    fi
    find "$prefix/lib" -type f \( -name '*.c' -o -name '*.pyx' -o -name '*.pxd' \) -delete
}

# Reproducible content: bytecode records its source's mtime, which is the install time; with
# every mtime fixed first, two builds of one commit write the same bytes. (Timestamp-based
# bytecode is kept: hash-based would cost every import a read and hash of its source.)
REPRODUCIBLE_MTIME=315532800 # 1980-01-01, the earliest a zip (wheel) can hold

same_mtimes() {
    find "$@" -exec touch -h -d "@$REPRODUCIBLE_MTIME" {} +
}

install_bootstrap_wheel() {
    prefix=$1 wheel=$2
    site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$prefix/bin/uv" pip install --quiet --python "$prefix/bin/python" --no-deps --no-index \
        --no-cache "$wheel"
    # uv's note of where the wheel came from holds the install time: not part of the image.
    for record in "$site"/prefect_agent_bootstrap-*.dist-info/RECORD; do
        rm -f "$(dirname "$record")/uv_cache.json"
        sed -i '/uv_cache\.json/d' "$record"
    done
    # only what this step wrote: touching the rest of bin/ would copy it (uv, 35 MB) into
    # this layer again
    same_mtimes "$site/bootstrap" "$site"/prefect_agent_bootstrap-*.dist-info \
        "$prefix/bin/prefect-agent-bootstrap"
    touch -h -d "@$REPRODUCIBLE_MTIME" "$prefix/bin"
    "$prefix/bin/python" -m compileall -q "$site/bootstrap"
    record_optional_imports "$prefix"
}

# What the core imports when it is there (requests: simplejson): the extras check imports
# the core again after an install that adds one (bootstrap.extras.touched). Once everything
# is installed; -B: no bytecode of what it imports besides the image's own; a HOME of its
# own, so the caches importing writes (matplotlib's font list) stay out of the image. The
# record's directory is the extras journal's too: group 0 may write it (OpenShift).
record_optional_imports() {
    prefix=$1
    home=$(mktemp -d)
    HOME=$home MPLCONFIGDIR=$home "$prefix/bin/python" -B -m bootstrap.extras.touched
    rm -rf "$home"
    chmod -R g=u "$prefix/.prefect-agent"
    same_mtimes "$prefix/.prefect-agent"
}

install_lume_services() {
    prefix=$1 lock=$2 repository=$3 version=$4 prefect_version=$5
    if [ -z "$version" ]; then
        echo "build.sh: LUME_SERVICES_VERSION not set: lume-services not installed" >&2
        return 0
    fi
    url="${repository%/}/archive/refs/tags/${version}.tar.gz"
    work=$(mktemp -d)
    archive="$work/archive.tar.gz"
    echo "build.sh: downloading lume-services $version from $url" >&2
    # Download first, so a missing tag or an unreachable repository gets its own message.
    "$prefix/bin/python" - "$url" "$archive" <<'PY' || exit 1
import sys, urllib.error, urllib.request
url, target = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        out.write(response.read())
except urllib.error.HTTPError as exc:
    hint = " (is LUME_SERVICES_VERSION a tag of that repository?)" if exc.code == 404 else ""
    sys.exit(f"build.sh: error: lume-services archive {url}: HTTP {exc.code} {exc.reason}{hint}")
except (urllib.error.URLError, OSError) as exc:
    reason = getattr(exc, "reason", exc)
    sys.exit(f"build.sh: error: cannot reach LUME_SERVICES_REPOSITORY for {url}: {reason}")
PY
    mkdir "$work/src" "$work/dist"
    tar -xzf "$archive" -C "$work/src" || die "lume-services archive $url is not a gzip tarball"
    set -- "$work"/src/*/
    [ $# -eq 1 ] && [ -d "$1" ] || die "lume-services archive $url does not hold one project directory"
    # A wheel built from the archive names the distribution and the version it really has: a
    # release's version need not be its tag (a v prefix, two tags on one commit, versioneer's
    # export-subst). Installing the archive file itself would make uv read a version from
    # its file name and refuse the mismatch.
    "$prefix/bin/uv" build --quiet --wheel --python "$prefix/bin/python" \
        --out-dir "$work/dist" "$1" ||
        die "lume-services $version from $url does not build (see uv's message above)"
    set -- "$work"/dist/*.whl
    wheel=$(basename "$1")
    name=${wheel%%-*}
    rest=${wheel#*-}
    dist_version=${rest%%-*}
    echo "build.sh: lume-services $version is $name $dist_version" >&2
    # The image's pins hold (prefect at PREFECT_VERSION); a release that needs others fails
    # here, uv naming both sides, rather than getting another prefect.
    sed "s/^prefect==.*/prefect==$prefect_version/" "$lock" >"$work/constraints.txt"
    "$prefix/bin/uv" pip install --python "$prefix/bin/python" --compile-bytecode \
        --constraint "$work/constraints.txt" "$1" lume-model ||
        die "lume-services $version ($name $dist_version) cannot be installed with this" \
            "image's pins (prefect==$prefect_version, $(basename "$lock")): uv's message above" \
            "names the conflict; build with a matching PREFECT_VERSION, or another release"
    mkdir -p "$prefix/share/prefect-agent"
    printf '{"requested": "%s", "archive": "%s", "distribution": "%s", "version": "%s"}\n' \
        "$version" "$url" "$name" "$dist_version" >"$prefix/share/prefect-agent/lume-services.json"
    rm -rf "$work"
}

share_with_group() {
    # The image's runtime user owns the environment; any uid in group 0 (OpenShift runs every
    # container as a random uid in group 0) may install extras into it too.
    chgrp -R 0 "$1"
    chmod -R g=u "$1"
}

sbom() {
    prefix=$1 output=$2 version=$3 target=$4 base=$5
    # Run by the environment's own Python, so it lists what is installed there. A failure
    # fails the build: an image without its bill of materials is not shipped.
    "$prefix/bin/python" -I "$(dirname "$0")/sbom.py" "$output" --version "$version" \
        --target "$target" --prefix "$prefix" --base-image "$base" ||
        die "could not write the SBOM of $target"
}

# The image's PATH has these wrappers instead of PREFIX/bin, which the runtime user owns: a
# root `docker exec CONTAINER prefect ...` then runs the command as the runtime user
# (root-step.py run-as-user), never a file that user could have replaced as root.
wrap_commands() {
    prefix=$1 directory=$2
    install -d -m 0755 "$directory"
    for command in "$prefix"/bin/*; do
        name=${command##*/}
        [ -f "$command" ] && [ -x "$command" ] || continue
        case "$name" in activate* | *.csh | *.fish | *.ps1 | deactivate) continue ;; esac
        cat >"$directory/$name" <<WRAPPER
#!/bin/sh
# $name of $prefix, as the runtime user (never as root): written by the image build.
[ "\$(/usr/bin/id -u)" = 0 ] || exec "$command" "\$@"
exec /usr/local/libexec/prefect-agent/python -I -S /usr/local/lib/prefect-agent/root-step.py run-as-user "$command" "\$@"
WRAPPER
        chmod 0755 "$directory/$name"
    done
}

command=${1:?usage: build.sh create-env|install-locked|slim|strip-native|install-lume-services|share-with-group|sbom|wrap-commands|with-ca ...}
shift
case "$command" in
    create-env) create_env "$@" ;;
    install-locked) install_locked "$@" ;;
    slim) slim "$@" ;;
    strip-native) strip_native "$@" ;;
    install-lume-services) install_lume_services "$@" ;;
    share-with-group) share_with_group "$@" ;;
    sbom) sbom "$@" ;;
    wrap-commands) wrap_commands "$@" ;;
    record-optional-imports) record_optional_imports "$@" ;;
    install-bootstrap-wheel) install_bootstrap_wheel "$@" ;;
    with-ca) with_ca "$@" ;;
    *) die "unknown step '$command'" ;;
esac
