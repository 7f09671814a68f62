// kafkajs driver of the compat tests: one JSON request on stdin, one JSON
// result on stdout. Bytes travel as base64; null stays null.
'use strict'
const { Kafka, CompressionTypes, CompressionCodecs, PartitionAssigners, logLevel } = require('kafkajs')
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
CompressionCodecs[CompressionTypes.LZ4] = new (require('kafkajs-lz4'))().codec

const dec = s => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))
const enc = b => (b === null || b === undefined ? null : Buffer.from(b).toString('base64'))
const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4 }

async function produce (kafka, req) {
  const p = kafka.producer({ idempotent: !!req.idempotent, maxInFlightRequests: req.idempotent ? 1 : undefined, allowAutoTopicCreation: false })
  await p.connect()
  const messages = req.records.map(r => ({
    key: dec(r.key),
    value: dec(r.value),
    partition: r.partition,
    headers: Object.fromEntries((r.headers || []).map(h => [h.key, dec(h.value)]))
  }))
  const meta = await p.send({ topic: req.topic, acks: -1, compression: codecs[req.codec || 'none'], messages })
  await p.disconnect()
  // One base offset per partition; the messages of a partition follow it in order.
  const base = {}
  for (const m of meta) base[m.partition] = Number(m.baseOffset)
  const seen = {}
  return req.records.map(r => {
    const i = seen[r.partition] || 0
    seen[r.partition] = i + 1
    return { partition: r.partition, offset: base[r.partition] + i }
  })
}

async function admin (kafka, req) {
  const a = kafka.admin()
  await a.connect()
  try {
    switch (req.op) {
      case 'create_topic':
        await a.createTopics({
          waitForLeaders: true,
          topics: [{ topic: req.topic, numPartitions: req.partitions, replicationFactor: 1, configEntries: Object.entries(req.configs).map(([name, value]) => ({ name, value })) }]
        })
        return {}
      case 'describe_config': {
        const r = await a.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: req.topic }] })
        const e = r.resources[0].configEntries.find(c => c.configName === req.key)
        return { value: e ? e.configValue : null }
      }
      case 'alter_config':
        await a.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: req.topic, configEntries: [{ name: req.key, value: req.value }] }] })
        return {}
      case 'delete_topic':
        await a.deleteTopics({ topics: [req.topic] })
        return {}
    }
    throw new Error('unknown op ' + req.op)
  } finally {
    await a.disconnect()
  }
}

// member is a long-running group member: JSON-lines events on stdout,
// commits after processing, SIGTERM disconnects (and leaves the group).
async function member (kafka, req) {
  const emit = o => process.stdout.write(JSON.stringify(o) + '\n')
  const assigners = { roundrobin: PartitionAssigners.roundRobin }
  const consumer = kafka.consumer({
    groupId: req.group,
    sessionTimeout: req.session_timeout_ms,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 100,
    partitionAssigners: [assigners[req.strategy]]
  })
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const ps = (e.payload.memberAssignment[req.topic] || []).slice().sort((a, b) => a - b)
    emit({ ev: 'owned', partitions: ps })
  })
  consumer.on(consumer.events.CRASH, e => emit({ ev: 'error', msg: String(e.payload.error) }))
  process.on('SIGTERM', () => { consumer.disconnect().then(() => process.exit(0), () => process.exit(1)) })
  await consumer.connect()
  await consumer.subscribe({ topic: req.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return
      emit({ ev: 'records', recs: batch.messages.map(m => [batch.partition, Number(m.offset)]) })
      const next = Number(batch.messages[batch.messages.length - 1].offset) + 1
      await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(next) }])
    }
  })
  return new Promise(() => {}) // runs until SIGTERM
}

// produceStream produces until SIGTERM (the cluster failover test): record
// i has key and value "k%07d" and goes to partition i % partitions; one
// JSON line per acknowledged or failed record and one ("sent") per record
// handed to the client, then it disconnects.
//
// One record, so one partition, per send(): kafkajs 2.2.4 keeps each
// broker's response across the retries of a send (sendMessages.js,
// responsePerBroker) and sends only to brokers without one, so when a
// partition's leader moves to a broker that already answered for another
// partition of the same send, that partition's records are never resent and
// send() still resolves. An ack is only reported for a partition that is in
// send()'s result.
async function produceStream (kafka, req) {
  const emit = o => process.stdout.write(JSON.stringify(o) + '\n')
  let stop = false
  process.on('SIGTERM', () => { stop = true })
  const p = kafka.producer({ idempotent: !!req.idempotent, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await p.connect()
  let i = 0
  while (!stop) {
    const k = 'k' + String(i).padStart(7, '0')
    const partition = i % req.partitions
    i++
    emit({ ev: 'sent', n: i })
    try {
      const meta = await p.send({ topic: req.topic, acks: -1, messages: [{ key: k, value: k, partition }] })
      const m = meta.find(m => m.partition === partition)
      if (m) emit({ ev: 'ack', key: k, partition, offset: Number(m.baseOffset) })
      else emit({ ev: 'error', key: k, msg: 'send() resolved without a result for partition ' + partition })
    } catch (e) {
      emit({ ev: 'error', key: k, msg: String(e) })
    }
    await new Promise(resolve => setTimeout(resolve, req.pause_ms))
  }
  await p.disconnect()
  emit({ ev: 'done', sent: i })
}

// consume reads n records from the start of every partition as the only
// member of a fresh group (kafkajs has no manual assignment).
async function consume (kafka, req) {
  const consumer = kafka.consumer({ groupId: 'compat-kafkajs-' + req.topic + '-' + Date.now(), maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic: req.topic, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (got.length >= req.n) return
        got.push({
          partition,
          offset: Number(message.offset),
          key: enc(message.key),
          value: enc(message.value),
          headers: Object.entries(message.headers || {}).map(([key, value]) => ({ key, value: enc(value) }))
        })
        if (got.length >= req.n) resolve()
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  got.sort((a, b) => a.partition - b.partition || a.offset - b.offset)
  return got
}

async function main () {
  const req = JSON.parse(require('fs').readFileSync(0, 'utf8'))
  if (req.op === 'version') return { version: require('kafkajs/package.json').version }
  const kafka = new Kafka({ clientId: 'compat-kafkajs', brokers: [req.bootstrap], logLevel: logLevel.ERROR, retry: req.retry })
  if (req.op === 'produce') return produce(kafka, req)
  if (req.op === 'member') return member(kafka, req)
  if (req.op === 'consume') return consume(kafka, req)
  if (req.op === 'produce_stream') return produceStream(kafka, req)
  return admin(kafka, req)
}

main().then(r => { if (r !== undefined) process.stdout.write(JSON.stringify(r)) }, e => { console.error(e); process.exit(1) })
