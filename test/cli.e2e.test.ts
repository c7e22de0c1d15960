import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { logEvent, type Proc, ROOT, run, runToEnd } from './helpers/processes.ts'

const MQTT_CLI = join(ROOT, 'node_modules/.bin/mqtt')

describe('the natter command, as a user runs it', () => {
  let dataDir: string
  let env: Record<string, string>
  let node: Proc
  let ports: { mqtt: number; ws: number; http: number }

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'natter-cli-'))
    env = {
      NATTER_HOST: '127.0.0.1',
      NATTER_MQTT_PORT: '0',
      NATTER_WS_PORT: '0',
      NATTER_HTTP_PORT: '0',
      NATTER_DATA_DIR: dataDir,
    }
    node = run('sh', ['bin/natter', 'start'], env)
    const up = JSON.parse(await node.waitFor(logEvent('listening'), 120_000))
    ports = up.ports
  })
  after(async () => {
    await node.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  const token = async (user: string) => {
    const r = await runToEnd('sh', ['bin/natter', 'token', user], env)
    assert.equal(r.code, 0, r.stderr)
    return r.stdout.trim()
  }

  /**
   * One QoS 1 exchange between two command-line clients of one user: the subscriber is started,
   * the node logs its subscription, the publisher sends, the subscriber prints the message.
   */
  const exchange = async (o: {
    sub: [string, string[]]
    pub: [string, string[]]
    user: string
    text: string
    /** The MQTT port by default. */
    port?: number
  }) => {
    const tok = await token(o.user)
    const port = String(o.port ?? ports.mqtt)
    const common = ['-h', '127.0.0.1', '-p', port, '-u', o.user, '-P', tok, '-q', '1']
    const topic = `u/${o.user}/self`
    const sub = run(o.sub[0], [...o.sub[1], ...common, '-i', `${o.user}/sub`, '-t', topic, '-v'])
    try {
      await node.waitFor(logEvent('subscribed', `${o.user}/sub`))
      const pub = await runToEnd(o.pub[0], [
        ...o.pub[1],
        ...common,
        '-i',
        `${o.user}/pub`,
        '-t',
        topic,
        '-m',
        o.text,
      ])
      assert.equal(pub.code, 0, pub.stderr)
      assert.equal(await sub.waitFor((l) => l.includes(o.text)), `${topic} ${o.text}`)
    } finally {
      await sub.stop()
    }
  }

  it('generates the dev secret on first start and keeps it in the data directory, readable by its owner only', () => {
    const mode = statSync(join(dataDir, 'dev-jwt-secret')).mode & 0o777
    assert.equal(mode, 0o600)
  })

  it('dev tokens work with the mqtt CLI (sub and pub, QoS 1)', () =>
    exchange({
      user: 'alice',
      sub: [MQTT_CLI, ['sub']],
      pub: [MQTT_CLI, ['pub']],
      text: 'hello from the CLI',
    }))

  it('works with the mqtt CLI over WebSocket, as README shows it (no --path)', () =>
    exchange({
      user: 'carol',
      sub: [MQTT_CLI, ['sub', '-l', 'ws']],
      pub: [MQTT_CLI, ['pub', '-l', 'ws']],
      port: ports.ws,
      text: 'hello over WebSocket',
    }))

  it("answers a request from the shell: mosquitto_sub follows the replies of mosquitto_pub's device", async () => {
    const tok = await token('dave')
    const common = [
      '-V',
      'mqttv311',
      '-h',
      '127.0.0.1',
      '-p',
      String(ports.mqtt),
      '-u',
      'dave',
      '-P',
      tok,
      '-q',
      '1',
    ]
    const sub = run('mosquitto_sub', [...common, '-i', 'dave/sh-replies', '-t', 'd/dave/sh/res', '-C', '1'])
    try {
      await node.waitFor(logEvent('subscribed', 'dave/sh-replies'))
      const pub = await runToEnd('mosquitto_pub', [
        ...common,
        '-i',
        'dave/sh',
        '-t',
        'req/whoami',
        '-m',
        '{"id":"1"}',
      ])
      assert.equal(pub.code, 0, pub.stderr)
      const reply = JSON.parse(await sub.waitFor((l) => l.startsWith('{')))
      assert.equal(reply.id, '1')
      assert.equal(reply.ok, true)
      assert.equal(reply.result.userId, 'dave')
      assert.equal(reply.result.deviceId, 'sh')
    } finally {
      await sub.stop()
    }
  })

  it('works with mosquitto_sub and mosquitto_pub', () =>
    exchange({
      user: 'bob',
      sub: ['mosquitto_sub', ['-V', 'mqttv311']],
      pub: ['mosquitto_pub', ['-V', 'mqttv311']],
      text: 'hello from mosquitto',
    }))

  it('sends and receives a chat message with the mqtt CLI, as the README shows', async () => {
    const alice = await token('alice')
    const bob = await token('bob')
    const res = await fetch(`http://127.0.0.1:${ports.http}/v1/chat.direct`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}` },
      body: JSON.stringify({ with: 'bob' }),
    })
    assert.equal(res.status, 200)
    const chatId = ((await res.json()) as { result: { id: string } }).result.id
    const common = ['-h', '127.0.0.1', '-p', String(ports.mqtt), '-q', '1']
    const sub = run(MQTT_CLI, [
      'sub',
      ...common,
      '-i',
      'bob/cli',
      '-u',
      'bob',
      '-P',
      bob,
      '-t',
      'u/bob/inbox',
    ])
    try {
      await node.waitFor(logEvent('subscribed', 'bob/cli'))
      const message = JSON.stringify({ clientMsgId: 'cli-1', text: 'hi bob' })
      const pub = await runToEnd(MQTT_CLI, [
        'pub',
        ...common,
        '-i',
        'alice/cli',
        '-u',
        'alice',
        '-P',
        alice,
        '-t',
        `c/${chatId}/send`,
        '-m',
        message,
      ])
      assert.equal(pub.code, 0, pub.stderr)
      const line = await sub.waitFor((l) => l.includes('hi bob'))
      const event = JSON.parse(line)
      assert.equal(event.type, 'message')
      assert.equal(event.chatId, chatId)
      assert.equal(event.senderId, 'alice')
      assert.equal(event.clientMsgId, 'cli-1')
      assert.equal(event.seq, 2)
      // The node logs the connections, never a token or a message's text.
      assert.ok(node.lines.some((l) => l.includes('"clientId":"alice/cli"')))
      for (const secret of [alice, bob, 'hi bob']) {
        assert.ok(!node.lines.some((l) => l.includes(secret)), 'a token or message text reached the log')
      }
    } finally {
      await sub.stop()
    }
  })

  it('refuses a mosquitto client with a bad token, with the CONNACK reason', async () => {
    const r = await runToEnd('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(ports.mqtt),
      '-u',
      'bob',
      '-P',
      'not-a-token',
      '-i',
      'bob/x',
      '-t',
      'u/bob/self',
      '-m',
      'x',
      '-V',
      'mqttv311',
    ])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /bad user name or password|not authori[sz]ed/i)
  })

  it('serves /healthz and /readyz on the HTTP port', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${ports.http}/readyz`)).status, 200)
  })

  it('stops cleanly on SIGTERM', async () => {
    const other = run('sh', ['bin/natter', 'start'], { ...env })
    await other.waitFor(logEvent('listening'))
    other.child.kill('SIGTERM')
    assert.equal(await other.exited, 0)
  })
})

describe('natter command errors', () => {
  it('stops with one line and exit code 2 on a bad setting', async () => {
    const r = await runToEnd('sh', ['bin/natter', 'start'], { NATTER_MQTT_PORT: 'nope' })
    assert.equal(r.code, 2)
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('natter: installing') && !l.includes('system node'))
    assert.deepEqual(lines, [
      'natter: invalid setting NATTER_MQTT_PORT="nope": expected an integer from 0 to 65535',
    ])
  })

  it('lists the commands with --help', async () => {
    const r = await runToEnd('sh', ['bin/natter', '--help'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /natter start/)
    assert.match(r.stdout, /natter token USER/)
  })

  it('exits 2 on an unknown command or a token with no user', async () => {
    assert.equal((await runToEnd('sh', ['bin/natter', 'launch'])).code, 2)
    const r = await runToEnd('sh', ['bin/natter', 'token'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /usage: natter token USER/)
  })

  it('says which port is taken when it cannot listen', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'natter-cli-'))
    const first = run('sh', ['bin/natter', 'start'], {
      NATTER_HOST: '127.0.0.1',
      NATTER_MQTT_PORT: '0',
      NATTER_WS_PORT: '0',
      NATTER_HTTP_PORT: '0',
      NATTER_DATA_DIR: dataDir,
    })
    try {
      const { ports } = JSON.parse(await first.waitFor(logEvent('listening')))
      const r = await runToEnd('sh', ['bin/natter', 'start'], {
        NATTER_HOST: '127.0.0.1',
        NATTER_MQTT_PORT: String(ports.mqtt),
        NATTER_WS_PORT: '0',
        NATTER_HTTP_PORT: '0',
        NATTER_DATA_DIR: dataDir,
      })
      assert.equal(r.code, 1)
      assert.match(r.stderr, new RegExp(`EADDRINUSE.*${ports.mqtt}`))
    } finally {
      await first.stop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

describe('the node that bin/natter starts', () => {
  // NATTER_NODE (scripts/node.sh) names the Node binary; a stand-in that prints its arguments
  // shows what bin/natter hands to Node, without starting anything.
  const dir = mkdtempSync(join(tmpdir(), 'natter-node-args-'))
  const fakeNode = join(dir, 'node')
  writeFileSync(fakeNode, '#!/bin/sh\necho "$@"\n')
  chmodSync(fakeNode, 0o755)
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('runs Node with 8 MB semi-spaces (unless NODE_OPTIONS sets its own) and no memory reducer', async () => {
    const plain = await runToEnd('sh', ['bin/natter', 'start'], { NATTER_NODE: fakeNode, NODE_OPTIONS: '' })
    assert.equal(plain.code, 0, plain.stderr)
    assert.match(plain.stdout, /--max-semi-space-size=8 --no-memory-reducer \S*cli\/natter\.ts start/)
    const own = await runToEnd('sh', ['bin/natter', 'start'], {
      NATTER_NODE: fakeNode,
      NODE_OPTIONS: '--max-semi-space-size=32',
    })
    assert.equal(own.code, 0, own.stderr)
    assert.doesNotMatch(own.stdout, /--max-semi-space-size/)
    assert.match(own.stdout, /--no-memory-reducer \S*cli\/natter\.ts start/)
  })
})
