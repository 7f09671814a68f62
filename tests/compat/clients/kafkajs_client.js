// kafkajs driver of the compat tests: one JSON request on stdin, one JSON
// result on stdout. Bytes travel as base64; null stays null.
'use strict'
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
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

async function main () {
  const req = JSON.parse(require('fs').readFileSync(0, 'utf8'))
  if (req.op === 'version') return { version: require('kafkajs/package.json').version }
  const kafka = new Kafka({ clientId: 'compat-kafkajs', brokers: [req.bootstrap], logLevel: logLevel.ERROR })
  if (req.op === 'produce') return produce(kafka, req)
  return admin(kafka, req)
}

main().then(r => { process.stdout.write(JSON.stringify(r)) }, e => { console.error(e); process.exit(1) })
