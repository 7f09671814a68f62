// Package operator holds the operator's generated CRDs (config/crd/bases),
// embedded so that `chronik-operator crd-gen` prints exactly what is
// committed. The operator itself lives in cmd/ and internal/.
package operator

import (
	"bytes"
	"embed"
	"io/fs"
)

//go:embed config/crd/bases/*.yaml
var crdFiles embed.FS

// CRDs returns every CRD as one multi-document YAML stream, in file-name order.
func CRDs() []byte {
	var out bytes.Buffer
	entries, _ := fs.ReadDir(crdFiles, "config/crd/bases") // embedded: cannot fail
	for _, e := range entries {
		b, _ := crdFiles.ReadFile("config/crd/bases/" + e.Name())
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes()
}
