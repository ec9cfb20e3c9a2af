// Benchmark worker for Haraka's p0f client (haraka-plugin-p0f's P0FClient)
// driving the same daemon, DEPTH queries in flight on its one connection.
//   node haraka.js SOCKET SECONDS DEPTH ADDR...   -> "<queries> <seconds>"
// NODE_PATH points at the bench-local node_modules that run.sh installs.
'use strict'
const { P0FClient } = require('haraka-plugin-p0f')

const [path, secondsArg, depthArg, ...addrs] = process.argv.slice(2)
const seconds = Number(secondsArg)
const depth = Number(depthArg)
if (!path || !(seconds > 0) || !(depth > 0) || addrs.length === 0) {
  console.error('usage: node haraka.js SOCKET SECONDS DEPTH ADDR...')
  process.exit(2)
}

const now = () => Number(process.hrtime.bigint()) / 1e9
const client = new P0FClient(path)
let sent = 0
let got = 0
let stop = false
let t0 = 0
let t1 = 0

function finish() {
  // Every reply was read: closing now leaves p0f nothing to write to us.
  // destroy(), not end(): a half-close makes p0f spin.
  client.shutdown()
  client.sock.destroy()
  console.log(`${got} ${(now() - t0).toFixed(6)}`)
}

function submit() {
  sent++
  client.query(addrs[sent % addrs.length], done)
}

function done(err) {
  if (err) {
    console.error(`query failed: ${err.message}`)
    process.exit(1)
  }
  got++
  if (got % 1000 === 0 && now() >= t1) stop = true
  if (!stop) submit()
  else if (got === sent) finish()
}

// Never hang the benchmark: P0FClient retries a dead socket forever.
setTimeout(() => {
  console.error('haraka.js: no result in time (is p0f running?)')
  process.exit(1)
}, (seconds + 30) * 1000).unref()

client.sock.on('connect', () => {
  t0 = now()
  t1 = t0 + seconds
  for (let i = 0; i < depth; i++) submit()
})
