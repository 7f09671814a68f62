package broker

// DescribeLogDirs (key 35), versions 0–4.
//
// One log directory, the data directory, with the size of every local
// partition asked for (all when topics is null) and, from v4, the file
// system's total and usable bytes. Offset lag is 0: there are no future
// replicas.

import (
	"context"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleDescribeLogDirs(_ context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DescribeLogDirsRequest)
	resp := kmsg.NewPtrDescribeLogDirsResponse()
	resp.SetVersion(h.Version)
	dir, _ := filepath.Abs(b.node.DataDir())
	out := kmsg.DescribeLogDirsResponseDir{Dir: dir, TotalBytes: -1, UsableBytes: -1}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		out.TotalBytes = int64(st.Blocks) * st.Bsize
		out.UsableBytes = int64(st.Bavail) * st.Bsize
	}
	type want struct {
		topic string
		parts []int32
	}
	var wants []want
	if req.Topics == nil {
		for _, t := range b.node.Meta().Topics() {
			w := want{topic: t.Name}
			for _, p := range t.Partitions {
				w.parts = append(w.parts, p.Index)
			}
			wants = append(wants, w)
		}
	} else {
		for _, t := range req.Topics {
			wants = append(wants, want{t.Topic, t.Partitions})
		}
	}
	for _, w := range wants {
		ot := kmsg.DescribeLogDirsResponseDirTopic{Topic: w.topic}
		for _, idx := range w.parts {
			if p, ok := b.node.Partition(w.topic, idx); ok {
				ot.Partitions = append(ot.Partitions, kmsg.DescribeLogDirsResponseDirTopicPartition{Partition: idx, Size: p.Log.Size()})
			}
		}
		if len(ot.Partitions) > 0 {
			out.Topics = append(out.Topics, ot)
		}
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{out}
	return result{resp: resp}
}
