#!/usr/bin/env python3
# Generates deploy/grafana/chronik.json (run from the repository root:
# python3 deploy/grafana/gen.py). Every expression is checked against a live
# broker by TestDashboardQueriesNameRealMetrics (internal/server).
import json
I='instance=~"$instance"'
def sel(extra=""):
    return "{"+I+(","+extra if extra else "")+"}"
R="[$__rate_interval]"
NOTOK=sel('outcome!="ok"'); ERR=sel('result="error"'); NOFETCH=sel('api!="Fetch"')
panels=[]; pid=[0]; y=[0]; x=[0]
def row(title):
    pid[0]+=1
    panels.append({"id":pid[0],"type":"row","title":title,"collapsed":False,"gridPos":{"h":1,"w":24,"x":0,"y":y[0]},"panels":[]})
    y[0]+=1
def panel(title, targets, unit="short", w=8, kind="timeseries", desc=""):
    pid[0]+=1
    if x[0]+w>24:
        x[0]=0; y[0]+=8
    ds={"type":"prometheus","uid":"${DS_PROMETHEUS}"}
    p={"id":pid[0],"type":kind,"title":title,"description":desc,"datasource":ds,
       "gridPos":{"h":8,"w":w,"x":x[0],"y":y[0]},
       "fieldConfig":{"defaults":{"unit":unit},"overrides":[]},
       "options":{"legend":{"displayMode":"list","placement":"bottom","showLegend":True},"tooltip":{"mode":"multi","sort":"desc"}},
       "targets":[{"refId":chr(65+i),"expr":e,"legendFormat":l,"datasource":ds} for i,(e,l) in enumerate(targets)]}
    panels.append(p); x[0]+=w
def endrow():
    x[0]=0; y[0]+=8
def q(p, api):
    return "histogram_quantile(%s, sum by (le) (rate(chronik_kafka_request_duration_seconds_bucket%s%s)))"%(p, sel('api="%s"'%api), R)
def rate(m, s=None):
    return "rate(%s%s%s)"%(m, s or sel(), R)

row("Throughput")
panel("Messages per second",[("sum(%s)"%rate("chronik_messages_stored_total"),"stored (in)"),("sum(%s)"%rate("chronik_messages_fetched_total"),"fetched (out)"),("sum(%s)"%rate("chronik_messages_received_total"),"received")],desc="Records stored and acknowledged, records returned by fetches, records received in produce requests.")
panel("Bytes per second",[("sum(%s)"%rate("chronik_bytes_produced_total"),"produced"),("sum(%s)"%rate("chronik_bytes_fetched_total"),"fetched")],"Bps")
panel("Requests per second by API",[("sum by (api) (%s)"%rate("chronik_kafka_requests_total"),"{{api}}")],"reqps")
endrow()
panel("Failed requests per second",[("sum by (api, outcome) (%s)"%rate("chronik_kafka_requests_total",NOTOK),"{{api}} {{outcome}}"),("sum by (reason) (%s)"%rate("chronik_bad_requests_total"),"refused: {{reason}}")],"reqps")
panel("Produce and fetch results",[("sum by (result) (%s)"%rate("chronik_produce_requests_total"),"produce {{result}}"),("sum by (result) (%s)"%rate("chronik_fetch_requests_total"),"fetch {{result}}")],"reqps")
panel("Connections",[("sum(chronik_active_connections%s)"%sel(),"open"),("sum(%s)"%rate("chronik_connections_total"),"accepted per second")])
endrow()
row("Latency")
panel("Produce latency (incl. durability)",[(q(0.5,"Produce"),"p50"),(q(0.99,"Produce"),"p99"),(q(0.999,"Produce"),"p99.9")],"s",desc="Arrival of the request to its response being ready, including the wait for fsync (acks=1) or the quorum (acks=all).")
panel("Fetch latency (incl. long poll)",[(q(0.5,"Fetch"),"p50"),(q(0.99,"Fetch"),"p99")],"s",desc="Includes max.wait.ms of long polls that found nothing.")
panel("p99 by API",[("histogram_quantile(0.99, sum by (le, api) (%s))"%rate("chronik_kafka_request_duration_seconds_bucket",NOFETCH),"{{api}}")],"s")
endrow()
row("Backpressure")
panel("Produce buffer in use",[("sum(chronik_produce_buffer_used_bytes%s) / sum(chronik_produce_buffer_limit_bytes%s)"%(sel(),sel()),"used / limit")],"percentunit",desc="The produce profile's memory budget (CHRONIK_PRODUCE_PROFILE). At 100% new requests wait: backpressure, not errors.")
panel("Time spent waiting for budget",[("sum(%s)"%rate("chronik_produce_backpressure_seconds_total"),"request-seconds waiting per second"),("sum(%s)"%rate("chronik_produce_backpressure_waits_total"),"requests that waited per second")])
panel("WAL queue waits",[("sum(%s)"%rate("chronik_wal_backpressure_seconds_total"),"appender-seconds waiting per second")],desc="Appenders waiting for space in the group committer's queue (the WAL profile's queue depth).")
endrow()
row("Write-ahead log")
panel("Rounds and fsyncs per second",[("sum(%s)"%rate("chronik_wal_batch_count_total"),"rounds"),("sum(%s)"%rate("chronik_wal_fsync_total"),"fsyncs"),("sum(%s)"%rate("chronik_wal_writes_total"),"writes")])
panel("fsync latency",[("histogram_quantile(0.5, sum by (le) (%s))"%rate("chronik_wal_fsync_duration_seconds_bucket"),"p50"),("histogram_quantile(0.99, sum by (le) (%s))"%rate("chronik_wal_fsync_duration_seconds_bucket"),"p99"),("histogram_quantile(0.99, sum by (le) (%s))"%rate("chronik_wal_write_duration_seconds_bucket"),"write phase p99")],"s")
panel("Writes per round",[("sum(%s) / sum(%s)"%(rate("chronik_wal_batch_writes_sum"),rate("chronik_wal_batch_writes_count")),"mean"),("histogram_quantile(0.99, sum by (le) (%s))"%rate("chronik_wal_batch_writes_bucket"),"p99")])
endrow()
panel("WAL bytes per second",[("sum(%s)"%rate("chronik_wal_bytes_written_total"),"written"),("sum(%s)"%rate("chronik_wal_writes_total",ERR),"failed writes")],"Bps")
panel("Segments in the range",[("sum(increase(chronik_wal_segment_rotations_total%s[$__range]))"%sel(),"rolled"),("sum(increase(chronik_segments_cleaned_total%s[$__range]))"%sel(),"deleted by retention")],kind="stat")
panel("Partitions",[("sum by (state) (chronik_partitions%s)"%sel(),"{{state}}"),("sum(chronik_raft_leader_count%s)"%sel(),"leaders"),("sum(chronik_raft_follower_count%s)"%sel(),"followers")])
endrow()
row("Consumer groups and lag")
panel("Groups by state",[("sum by (state, protocol) (chronik_consumer_groups%s)"%sel(),"{{protocol}} {{state}}")])
panel("Rebalances per minute",[("sum by (protocol) (%s) * 60"%rate("chronik_group_rebalances_total"),"{{protocol}}")])
panel("Lag by group",[("sum by (group) (chronik_consumer_group_lag%s)"%sel(),"{{group}}")],desc="High watermark minus committed offset, summed over the group's partitions.")
endrow()
panel("Top 10 lagging partitions",[("topk(10, chronik_consumer_lag%s)"%sel(),"{{group}} {{topic}}-{{partition}}")],w=24,desc="Per partition when metrics.lag.per.partition is on (default), capped by metrics.lag.max.series.")
endrow()
row("Replication (cluster)")
panel("Under-replicated partitions",[("sum by (instance) (chronik_under_replicated_partitions%s)"%sel(),"{{instance}}")],desc="Partitions each node leads with fewer in-sync replicas than replicas; a rolling restart waits for 0 before the next node.")
panel("ISR shrinks and expands per minute",[("sum(%s) * 60"%rate("chronik_isr_shrinks_total"),"shrinks"),("sum(%s) * 60"%rate("chronik_isr_expands_total"),"expands")],desc="A follower leaves the ISR when its durable log has not reached the leader's for replica.lag.time.max.ms.")
endrow()
panel("Replica lag by peer",[("max by (instance, peer) (chronik_replica_max_lag_entries%s)"%sel(),"{{instance}}: node {{peer}} (worst partition)"),("sum by (instance, peer) (chronik_replica_lag_entries%s)"%sel(),"{{instance}}: node {{peer}} (all partitions)")],desc="Raft entries a peer's durable log is behind the partitions this node leads; it grows while a node is down or slow and falls to 0 once it caught up.")
panel("Leaders per node, elections per minute",[("sum by (instance) (chronik_raft_leader_count%s)"%sel(),"leaders {{instance}}"),("sum(%s) * 60"%rate("chronik_leader_elections_total"),"elections")],desc="Leaders spread over the preferred replicas; elections rise when nodes fail or restart.")
endrow()
row("Transport (cluster)")
panel("Peer connections",[("sum by (instance, peer) (chronik_transport_connected%s)"%sel('direction="out"'),"{{instance}} to {{peer}}")],desc="Established outbound connections per peer (one per lane); 0 means the peer is down or unreachable.")
panel("Messages per second by peer",[("sum by (instance, peer) (%s)"%rate("chronik_transport_messages_sent_total"),"sent {{instance}} to {{peer}}"),("sum by (instance, peer) (%s)"%rate("chronik_transport_messages_received_total"),"received {{instance}} from {{peer}}")])
panel("Bytes per second by peer",[("sum by (instance, peer) (%s)"%rate("chronik_transport_bytes_sent_total"),"sent {{instance}} to {{peer}}"),("sum by (instance, peer) (%s)"%rate("chronik_transport_bytes_received_total"),"received {{instance}} from {{peer}}")],"Bps")
endrow()
panel("Round trip p99 by peer",[("histogram_quantile(0.99, sum by (instance, peer, le) (%s))"%rate("chronik_transport_rtt_seconds_bucket"),"{{instance}} to {{peer}}")],"s",desc="Pings on each peer's control connection.")
panel("Queued bytes by peer",[("sum by (instance, peer) (chronik_transport_queue_bytes%s)"%sel(),"{{instance}} to {{peer}}")],"bytes",desc="Messages waiting to be written to a peer; it grows when the peer or the link is slow.")
panel("Dropped messages and failed dials per second",[("sum by (instance, peer, reason) (%s)"%rate("chronik_transport_dropped_messages_total"),"dropped {{instance}} to {{peer}}: {{reason}}"),("sum by (instance, peer) (%s)"%rate("chronik_transport_dial_failures_total"),"dial failures {{instance}} to {{peer}}")],desc="Raft retransmits what is dropped; steady drops mean a peer is down or its queue is full.")
endrow()
row("Resources")
panel("CPU",[(rate("process_cpu_seconds_total"),"{{instance}}")],"percentunit")
panel("Memory",[("process_resident_memory_bytes%s"%sel(),"RSS {{instance}}"),("go_memstats_heap_inuse_bytes%s"%sel(),"Go heap {{instance}}")],"bytes")
panel("Goroutines, file descriptors, readiness",[("go_goroutines%s"%sel(),"goroutines {{instance}}"),("process_open_fds%s"%sel(),"open fds {{instance}}"),("chronik_ready%s"%sel(),"ready {{instance}}")])
endrow()
dash={"__inputs":[{"name":"DS_PROMETHEUS","label":"Prometheus","type":"datasource","pluginId":"prometheus","pluginName":"Prometheus"}],
 "title":"Chronik","uid":"chronik-overview","tags":["chronik","kafka"],"timezone":"browser","schemaVersion":39,"version":1,"refresh":"10s",
 "time":{"from":"now-1h","to":"now"},
 "templating":{"list":[
   {"name":"instance","type":"query","label":"Broker","datasource":{"type":"prometheus","uid":"${DS_PROMETHEUS}"},"query":"label_values(chronik_ready, instance)","refresh":2,"includeAll":True,"multi":True,"allValue":".*","current":{"text":"All","value":"$__all"}}]},
 "annotations":{"list":[]},"editable":True,"panels":panels}
open('deploy/grafana/chronik.json','w').write(json.dumps(dash,indent=2)+"\n")
print(len(panels),"panels")
