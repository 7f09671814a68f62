#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries that the operator's tests run
# (kube-apiserver, kube-controller-manager) from the Go module proxy, once per
# machine, into a cache outside the clone, and makes sure etcd is installed
# (Debian's etcd-server). Prints the cache directory on stdout; everything
# else goes to stderr.
#
#   KUBE_VERSION   Kubernetes release to build (default v1.37.2)
#   KUBE_TOOLS_DIR cache directory (default $HOME/.cache/chronik/kube-$KUBE_VERSION)
#   KUBE_BINARIES  what to build (default "kube-apiserver kube-controller-manager";
#                  add kube-scheduler when a test needs one)
#
# k8s.io/kubernetes is not meant to be used as a module: its go.mod replaces
# every k8s.io/* staging module with a local path. A throw-away module requires
# it and replaces each of those with the published staging module of the same
# release (v0.X.Y for v1.X.Y), leaving out the sample modules, which nothing
# here imports. The binaries land in the cache only when all of them built, so
# an interrupted build is simply started again.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
STAGING_VERSION=v0.${KUBE_VERSION#v1.}
DIR=${KUBE_TOOLS_DIR:-${HOME}/.cache/chronik/kube-${KUBE_VERSION}}
GO=${GO:-go}
read -r -a BINARIES <<<"${KUBE_BINARIES:-kube-apiserver kube-controller-manager}"

log() { echo "kube-tools: $*" >&2; }

ensure_etcd() {
	local etcd
	etcd=$(command -v etcd || true)
	if [[ -z $etcd ]]; then
		log "installing etcd-server from apt"
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null 2>&1; then
			apt-get update -qq >&2
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >&2
		fi
		etcd=$(command -v etcd || true)
		# Debian enables and starts a system etcd on 2379; the tests run their own.
		if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
			systemctl disable --now etcd >/dev/null 2>&1 || true
		fi
	fi
	if [[ -z $etcd ]]; then
		log "etcd is not installed and apt could not install etcd-server"
		exit 1
	fi
	ln -sf "$etcd" "$DIR/etcd"
}

built() {
	local b
	for b in "${BINARIES[@]}"; do
		[[ -x $DIR/$b ]] || return 1
	done
	[[ -f $DIR/.version && $(cat "$DIR/.version") == "$KUBE_VERSION" ]]
}

mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9 # one build per machine even when two test runs start together

if ! built; then
	start=$(date +%s)
	log "building ${BINARIES[*]} $KUBE_VERSION into $DIR (about 6-10 minutes the first time on 2 cores)"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	cd "$work"
	"$GO" mod init chronik.local/kube-tools >/dev/null 2>&1
	gomod=$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
	[[ -f $gomod ]] || { log "cannot download k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
	mapfile -t staging < <(sed -n 's#^\t\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$gomod" | grep -v '^k8s\.io/sample-')
	((${#staging[@]} > 10)) || { log "found no staging modules in $gomod"; exit 1; }
	{
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo "replace ("
		for m in "${staging[@]}"; do echo "	$m => $m $STAGING_VERSION"; done
		echo ")"
	} >>go.mod
	mkdir tools
	{
		echo "//go:build tools"
		echo "package tools"
		echo "import ("
		for b in "${BINARIES[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
		echo ")"
	} >tools/tools.go
	"$GO" mod tidy >&2
	out=$work/bin
	mkdir -p "$out"
	pkgs=()
	for b in "${BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	# The version the binaries report (/version, --version), as a release build sets it.
	v=k8s.io/component-base/version
	ldflags="-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION") -X $v.gitTreeState=clean"
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" >&2
	for b in "${BINARIES[@]}"; do mv -f "$out/$b" "$DIR/$b"; done
	echo "$KUBE_VERSION" >"$DIR/.version"
	log "built in $(($(date +%s) - start)) s"
fi
ensure_etcd
echo "$DIR"
