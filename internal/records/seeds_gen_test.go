//go:build seeds

package records

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds regenerates the committed seed corpus of FuzzRecordBatch
// (go test -tags seeds -run TestWriteFuzzSeeds).
func TestWriteFuzzSeeds(t *testing.T) {
	d := filepath.Join("testdata", "fuzz", "FuzzRecordBatch")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range [][]byte{makeBatch(0, 1, 1), makeBatch(1<<40, 20, 1_700_000_000_000), makeBatch(7, 3, -1)} {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("built-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
