// Command benchreport turns `go test -bench` output of the storage
// benchmarks (stdin) into the markdown tables of docs/PERFORMANCE.md. It
// is run by scripts/bench-storage.sh.
package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

type result map[string]float64 // unit -> value

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

func main() {
	res := map[string][]result{}
	var order []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		r := result{}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				r[f[i+1]] = v
			}
		}
		if _, ok := res[m[1]]; !ok {
			order = append(order, m[1])
		}
		res[m[1]] = append(res[m[1]], r)
	}
	mean := func(name, unit string) float64 {
		rs := res[name]
		if len(rs) == 0 {
			return 0
		}
		s := 0.0
		for _, r := range rs {
			s += r[unit]
		}
		return s / float64(len(rs))
	}
	raw := "BenchmarkRawDisk/seq-1MiB-fdatasync"
	rawLat := "BenchmarkRawDisk/append-300B-fdatasync"
	rawMB := mean(raw, "MB/s")
	app := func(p string, w, parts, size int) string {
		return fmt.Sprintf("BenchmarkAppend/profile=%s/writers=%d/partitions=%d/size=%d", p, w, parts, size)
	}
	fmt.Printf("Raw disk, measured before and after the Chronik runs (mean of %d): sequential 1 MiB writes with an fdatasync after each: **%.0f MB/s**; one writer appending 300 B with an fdatasync each: p50 **%.0f µs**, p99 **%.0f µs**.\n\n",
		len(res[raw]), rawMB, mean(rawLat, "p50-us"), mean(rawLat, "p99-us"))

	fmt.Println("**(a) Throughput, 128 concurrent writers of 16 KiB appends, profile `high`** (goal: at least 70% of raw)")
	fmt.Println()
	fmt.Println("| partitions | Chronik MB/s | raw MB/s (1 MiB + fdatasync) | Chronik / raw | raw, 16 KiB to each of N files + concurrent fdatasyncs |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	for _, parts := range []int{1, 16, 256} {
		v := mean(app("high", 128, parts, 16384), "MB/s")
		multi := "–"
		if parts > 1 {
			multi = fmt.Sprintf("%.0f MB/s", mean(fmt.Sprintf("BenchmarkRawDisk/files-%d-16KiB-fdatasync", parts), "MB/s"))
		}
		fmt.Printf("| %d | %.0f | %.0f | %.0f%% | %s |\n", parts, v, rawMB, 100*v/rawMB, multi)
	}
	fmt.Println()
	fmt.Println("**(b) Appends per second, 128 concurrent writers of 256 B appends**")
	fmt.Println()
	fmt.Println("| profile | 1 partition | 16 partitions | 256 partitions |")
	fmt.Println("|---|---:|---:|---:|")
	for _, p := range []string{"low", "medium", "high", "ultra", "none"} {
		fmt.Printf("| %s | %.0f | %.0f | %.0f |\n", p, mean(app(p, 128, 1, 256), "appends/s"), mean(app(p, 128, 16, 256), "appends/s"), mean(app(p, 128, 256, 256), "appends/s"))
	}
	fmt.Println()
	fmt.Println("**(c) Latency of one writer's durable 256 B appends, profile `low`** (goal: p99 within 2x of raw fdatasync)")
	fmt.Println()
	fmt.Println("| | p50 µs | p99 µs | p99 / raw p99 |")
	fmt.Println("|---|---:|---:|---:|")
	rp99 := mean(rawLat, "p99-us")
	fmt.Printf("| raw write+fdatasync (300 B) | %.0f | %.0f | 1.00 |\n", mean(rawLat, "p50-us"), rp99)
	for _, parts := range []int{1, 16} {
		n := app("low", 1, parts, 256)
		fmt.Printf("| Chronik, %d partition(s) | %.0f | %.0f | %.2f |\n", parts, mean(n, "p50-us"), mean(n, "p99-us"), mean(n, "p99-us")/rp99)
	}
	fmt.Println()
	fmt.Println("<details><summary>Every BenchmarkAppend result of this run</summary>")
	fmt.Println()
	fmt.Println("| benchmark | MB/s | appends/s | p50 µs | p99 µs |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, n := range order {
		if !strings.HasPrefix(n, "BenchmarkAppend/") {
			continue
		}
		fmt.Printf("| %s | %.1f | %.0f | %s | %s |\n", strings.TrimPrefix(n, "BenchmarkAppend/"), mean(n, "MB/s"), mean(n, "appends/s"), opt(mean(n, "p50-us")), opt(mean(n, "p99-us")))
	}
	fmt.Println()
	fmt.Println("</details>")
}

func opt(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}
