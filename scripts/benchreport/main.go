// Command benchreport turns `go test -bench` output of the storage
// benchmarks (stdin) into the markdown tables of docs/PERFORMANCE.md. It
// is run by scripts/bench-storage.sh.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type result map[string]float64 // unit -> value

type named struct {
	name string
	r    result
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// parse reads `go test -bench` output and returns its results in order.
func parse(in io.Reader) ([]named, error) {
	var out []named
	sc := bufio.NewScanner(in)
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
		out = append(out, named{m[1], r})
	}
	return out, sc.Err()
}

const (
	raw    = "BenchmarkRawDisk/seq-1MiB-fdatasync"
	rawLat = "BenchmarkRawDisk/append-300B-fdatasync"
)

func app(p string, w, parts, size int) string {
	return fmt.Sprintf("BenchmarkAppend/profile=%s/writers=%d/partitions=%d/size=%d", p, w, parts, size)
}

func main() {
	pairedFile := flag.String("paired", "", "bracketed runs for goals (a) and (c): raw, Chronik, raw, … raw (go test -bench output)")
	flag.Parse()
	all, err := parse(os.Stdin)
	if err != nil {
		log.Fatal(err)
	}
	res := map[string][]result{}
	var order []string
	for _, n := range all {
		if _, ok := res[n.name]; !ok {
			order = append(order, n.name)
		}
		res[n.name] = append(res[n.name], n.r)
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
	rawMB := mean(raw, "MB/s")
	fmt.Printf("Raw disk, measured before and after the Chronik runs (mean of %d): sequential 1 MiB writes with an fdatasync after each: **%.0f MB/s**; one writer appending 300 B with an fdatasync each: p50 **%.0f µs**, p99 **%.0f µs**.\n\n",
		len(res[raw]), rawMB, mean(rawLat, "p50-us"), mean(rawLat, "p99-us"))

	multi := func(parts int) string {
		if parts == 1 {
			return "–"
		}
		return fmt.Sprintf("%.0f MB/s", mean(fmt.Sprintf("BenchmarkRawDisk/files-%d-16KiB-fdatasync", parts), "MB/s"))
	}
	long := ""
	if *pairedFile != "" {
		f, err := os.Open(*pairedFile)
		if err != nil {
			log.Fatal(err)
		}
		paired, err := parse(f)
		_ = f.Close()
		if err != nil {
			log.Fatal(err)
		}
		printBracketed(paired, multi)
		fmt.Println("**The long run**: every case once (all profiles, sizes and writer counts), against the mean of the raw runs before and after the whole of it.")
		fmt.Println()
		long = ", long run"
	}
	fmt.Printf("**(a%s) Throughput, 128 concurrent writers of 16 KiB appends, profile `high`** (goal: at least 70%% of raw)\n", long)
	fmt.Println()
	fmt.Println("| partitions | Chronik MB/s | raw MB/s (1 MiB + fdatasync) | Chronik / raw | raw, 16 KiB to each of N files + concurrent fdatasyncs |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	for _, parts := range []int{1, 16, 256} {
		v := mean(app("high", 128, parts, 16384), "MB/s")
		fmt.Printf("| %d | %.0f | %.0f | %.0f%% | %s |\n", parts, v, rawMB, 100*v/rawMB, multi(parts))
	}
	fmt.Println()
	fmt.Printf("**(b%s) Appends per second, 128 concurrent writers of 256 B appends**\n", long)
	fmt.Println()
	fmt.Println("| profile | 1 partition | 16 partitions | 256 partitions |")
	fmt.Println("|---|---:|---:|---:|")
	for _, p := range []string{"low", "medium", "high", "ultra", "none"} {
		fmt.Printf("| %s | %.0f | %.0f | %.0f |\n", p, mean(app(p, 128, 1, 256), "appends/s"), mean(app(p, 128, 16, 256), "appends/s"), mean(app(p, 128, 256, 256), "appends/s"))
	}
	fmt.Println()
	fmt.Printf("**(c%s) Latency of one writer's durable 256 B appends, profile `low`** (goal: p99 within 2x of raw fdatasync)\n", long)
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
	fmt.Println("| benchmark | MB/s | appends/s | writes per commit round | p50 µs | p99 µs |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, n := range order {
		if !strings.HasPrefix(n, "BenchmarkAppend/") {
			continue
		}
		fmt.Printf("| %s | %.1f | %.0f | %.1f | %s | %s |\n", strings.TrimPrefix(n, "BenchmarkAppend/"), mean(n, "MB/s"), mean(n, "appends/s"), mean(n, "writes/round"), opt(mean(n, "p50-us")), opt(mean(n, "p99-us")))
	}
	fmt.Println()
	fmt.Println("</details>")
}

// pair is one bracketed round of one case: Chronik's figure and the mean
// of the raw runs just before and just after it.
type pair struct{ chronik, raw float64 }

// bracketed reads runs in the order raw, Chronik cases, raw, Chronik
// cases, …, raw and pairs each Chronik result (unit) of the named cases
// with the mean of the rawName runs (rawUnit) around it, so that a disk
// whose rate drifts during the run is compared with itself at that moment.
// It also returns the raw values seen.
func bracketed(runs []named, rawName, rawUnit, unit string, cases []string) (map[string][]pair, []float64) {
	var raws []float64
	out := map[string][]pair{}
	type pending struct {
		name string
		v    float64
	}
	var open []pending
	for _, n := range runs {
		if n.name == rawName {
			v := n.r[rawUnit]
			for _, p := range open {
				out[p.name] = append(out[p.name], pair{p.v, (raws[len(raws)-1] + v) / 2})
			}
			open = open[:0]
			raws = append(raws, v)
			continue
		}
		if slices.Contains(cases, n.name) && len(raws) > 0 {
			open = append(open, pending{n.name, n.r[unit]})
		}
	}
	return out, raws
}

// ratios returns the medians of Chronik's and raw's figures and the
// median, min and max of their per-round ratio.
func ratios(ps []pair) (c, r, med, lo, hi float64) {
	var cs, rs, qs []float64
	for _, p := range ps {
		cs = append(cs, p.chronik)
		rs = append(rs, p.raw)
		qs = append(qs, p.chronik/p.raw)
	}
	return median(cs), median(rs), median(qs), slices.Min(qs), slices.Max(qs)
}

// printBracketed prints goals (a) and (c) from the bracketed runs.
func printBracketed(paired []named, multi func(parts int) string) {
	var aCases, cCases []string
	for _, parts := range []int{1, 16, 256} {
		aCases = append(aCases, app("high", 128, parts, 16384))
	}
	for _, parts := range []int{1, 16} {
		cCases = append(cCases, app("low", 1, parts, 256))
	}
	a, raws := bracketed(paired, raw, "MB/s", "MB/s", aCases)
	if len(raws) < 2 || len(a[aCases[0]]) == 0 {
		log.Fatal("paired runs: need raw runs before and after the Chronik runs")
	}
	fmt.Println("**(a) Throughput, 128 concurrent writers of 16 KiB appends, profile `high`** (goal: at least 70% of raw)")
	fmt.Println()
	fmt.Printf("Bracketed: %d rounds of raw → Chronik → raw; each round's ratio is against the mean of the raw runs just before and after it (raw sequential ranged %.0f–%.0f MB/s during these rounds).\n\n", len(a[aCases[0]]), slices.Min(raws), slices.Max(raws))
	fmt.Println("| partitions | Chronik MB/s (median) | raw MB/s around it (median) | Chronik / raw, median (min–max) | raw, 16 KiB to each of N files + concurrent fdatasyncs |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	for i, parts := range []int{1, 16, 256} {
		if ps := a[aCases[i]]; len(ps) > 0 {
			c, r, med, lo, hi := ratios(ps)
			fmt.Printf("| %d | %.0f | %.0f | %.0f%% (%.0f–%.0f%%) | %s |\n", parts, c, r, 100*med, 100*lo, 100*hi, multi(parts))
		}
	}
	fmt.Println()
	fmt.Println("**(c) Latency of one writer's durable 256 B appends, profile `low`** (goal: p99 within 2x of raw fdatasync)")
	fmt.Println()
	p50, _ := bracketed(paired, rawLat, "p50-us", "p50-us", cCases)
	p99, _ := bracketed(paired, rawLat, "p99-us", "p99-us", cCases)
	fmt.Println("Bracketed the same way against one writer appending 300 B with an fdatasync each.")
	fmt.Println()
	fmt.Println("| | Chronik p50 µs | raw p50 µs | Chronik p99 µs | raw p99 µs | p99 / raw p99, median (min–max) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for i, parts := range []int{1, 16} {
		if len(p99[cCases[i]]) == 0 {
			continue
		}
		c50, r50, _, _, _ := ratios(p50[cCases[i]])
		c99, r99, med, lo, hi := ratios(p99[cCases[i]])
		fmt.Printf("| Chronik, %d partition(s) | %.0f | %.0f | %.0f | %.0f | %.2f (%.2f–%.2f) |\n", parts, c50, r50, c99, r99, med, lo, hi)
	}
	fmt.Println()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func opt(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}
