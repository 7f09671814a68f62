#!/usr/bin/env bash
# Builds helm from the Go module proxy once per machine into a cache
# outside the clone and prints the binary's path (everything else goes to
# stderr). HELM_VERSION (default v3.22.0), HELM_TOOLS_DIR (default
# $HOME/.cache/chronik/helm-$HELM_VERSION).
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
DIR=${HELM_TOOLS_DIR:-${HOME}/.cache/chronik/helm-${HELM_VERSION}}
GO=${GO:-go}
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
if [[ ! -x $DIR/helm ]]; then
	echo "helm-tools: building helm $HELM_VERSION into $DIR (a few minutes the first time)" >&2
	start=$(date +%s)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	GOBIN=$tmp CGO_ENABLED=0 "$GO" install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
	mv -f "$tmp/helm" "$DIR/helm"
	echo "helm-tools: built in $(($(date +%s) - start)) s" >&2
fi
echo "$DIR/helm"
