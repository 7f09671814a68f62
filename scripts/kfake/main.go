// Command kfake serves franz-go's in-memory Kafka (kfake) on one port: the
// reference Kafka-protocol server of scripts/bench-peers.sh. It keeps
// everything in memory and never syncs anything to disk.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 9192, "port to listen on (127.0.0.1)")
	flag.Parse()
	c, err := kfake.NewCluster(kfake.Ports(*port), kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Println("kfake listening on", c.ListenAddrs())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
