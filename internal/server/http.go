package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status"` // ok, ready, not ready
	Phase  string `json:"phase"`  // what the broker is doing
	// Reasons say why the broker is not ready; empty when it is.
	Reasons []string `json:"reasons,omitempty"`
	// Partitions counts the local replicas: wanted by the metadata, opened
	// so far (tried, whatever the outcome), serving, and offline as
	// "name: reason" (a corrupt log, kept offline; or storage that failed
	// or could not be opened, retried with backoff). An offline partition
	// does not make the broker unready: the others serve, as a Kafka
	// broker with an offline replica does; it is named here so that an
	// operator or a probe sees it.
	Partitions struct {
		Wanted  int64    `json:"wanted"`
		Opened  int64    `json:"opened"`
		Serving int      `json:"serving"`
		Offline []string `json:"offline,omitempty"`
	} `json:"partitions"`
	Listener string  `json:"listener,omitempty"`
	Uptime   float64 `json:"uptime_seconds"`
	Version  string  `json:"version,omitempty"`
}

// Readiness reports whether the broker serves clients, and why not.
func (s *Server) Readiness() (Health, bool) {
	var h Health
	h.Phase, _ = s.phase.Load().(string)
	h.Uptime = time.Since(s.started).Seconds()
	h.Version = Version
	h.Partitions.Wanted, h.Partitions.Opened = s.partsWanted.Load(), s.partsOpened.Load()
	s.mu.RLock()
	h.Partitions.Serving = len(s.parts)
	for name, err := range s.offline {
		h.Partitions.Offline = append(h.Partitions.Offline, name+": "+err.Error())
	}
	s.mu.RUnlock()
	slices.Sort(h.Partitions.Offline)
	if ln := s.listener.Load(); ln != nil {
		h.Listener = (*ln).Addr().String()
	}
	if !s.ready.Load() {
		h.Reasons = append(h.Reasons, "starting: "+h.Phase)
		if h.Partitions.Wanted > 0 && h.Partitions.Opened < h.Partitions.Wanted {
			h.Reasons = append(h.Reasons, fmt.Sprintf("recovering partitions: %d of %d opened", h.Partitions.Opened, h.Partitions.Wanted))
		}
		if h.Listener == "" {
			h.Reasons = append(h.Reasons, "kafka listener not bound yet")
		}
	}
	if s.stopping.Load() {
		h.Reasons = append(h.Reasons, "shutting down")
	}
	if s.ready.Load() && !s.stopping.Load() && s.cfg.IsCluster() {
		h.Reasons = append(h.Reasons, s.clusterNotReady()...)
	}
	ok := len(h.Reasons) == 0
	h.Status = "ready"
	if !ok {
		h.Status = "not ready"
	}
	return h, ok
}

// serveHTTP serves /metrics, /healthz and /readyz (and the original's
// /health and /ready) on the metrics address until ctx ends.
func (s *Server) serveHTTP(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{ErrorLog: nil, Registry: s.metrics.Registry}))
	live := func(w http.ResponseWriter, _ *http.Request) {
		h, _ := s.Readiness()
		h.Status, h.Reasons = "ok", nil
		writeJSON(w, http.StatusOK, h)
	}
	ready := func(w http.ResponseWriter, _ *http.Request) {
		h, ok := s.Readiness()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, h)
	}
	mux.HandleFunc("/healthz", live)
	mux.HandleFunc("/health", live)
	mux.HandleFunc("/readyz", ready)
	mux.HandleFunc("/ready", ready)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
