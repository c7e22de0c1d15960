import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { parse } from 'yaml'
import { envName, settingKeys } from '../config/schema.ts'
import { ROOT } from './helpers/processes.ts'

interface Service {
  image?: string
  build?: string
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }> | string[]
  healthcheck?: { test: string[] }
  ports?: string[]
  volumes?: string[]
}

const composeFile = join(ROOT, 'docker-compose.yml')
const hasCompose = (() => {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

describe('the docker-compose cluster', () => {
  // YAML merge keys (<<) are resolved as docker compose resolves them.
  const compose = parse(readFileSync(composeFile, 'utf8'), { merge: true }) as {
    services: Record<string, Service>
    volumes: Record<string, unknown>
  }
  const services = compose.services
  const nodes = ['node1', 'node2', 'node3']

  it('is valid for docker compose', {
    skip: !hasCompose && 'no docker compose here; checked as YAML below',
  }, () => {
    execFileSync('docker', ['compose', '-f', composeFile, 'config', '--quiet'], {
      env: { ...process.env, NATTER_JWT_SECRET: 'x'.repeat(32) },
    })
  })

  it('runs three Natter nodes on one Redis and one MongoDB replica set, with a shared secret', () => {
    const known = new Set(settingKeys.map(envName))
    for (const name of nodes) {
      const node = services[name] as Service
      assert.equal(node.build, '.', `${name} is built from this repository`)
      const env = node.environment ?? {}
      for (const key of Object.keys(env)) assert.ok(known.has(key), `${name}: ${key} is a Natter setting`)
      assert.equal(env.NATTER_REDIS_URL, 'redis://redis:6379')
      assert.match(env.NATTER_MONGODB_URI ?? '', /^mongodb:\/\/mongo:27017\/\w+\?replicaSet=rs0$/)
      assert.match(env.NATTER_JWT_SECRET ?? '', /^\$\{NATTER_JWT_SECRET:\?/)
      assert.equal(env.NATTER_NODE_ID, name)
      assert.ok(node.healthcheck?.test.join(' ').includes('/readyz'), `${name} is health-checked on /readyz`)
    }
    assert.ok((services.mongo?.healthcheck?.test ?? []).join(' ').includes('rs.initiate'))
    assert.ok((services.redis as Service & { command: string[] }).command.includes('--appendonly'))
    assert.match(services.s3?.image ?? '', /versitygw:v1\.7\.0$/)
  })

  it('keeps media in the S3 server, and runs the media service on its own behind /v1/media.*', () => {
    for (const name of [...nodes, 'media']) {
      const env = services[name]?.environment ?? {}
      assert.equal(env.NATTER_S3_ENDPOINT, 'http://s3:7070', name)
      assert.equal(env.NATTER_S3_FORCE_PATH_STYLE, 'true', name)
      assert.ok(env.NATTER_S3_BUCKET, name)
    }
    const media = services.media as Service & { command: string[] }
    assert.deepEqual(media.command, ['sh', 'bin/natter', 'media'])
    assert.ok(media.healthcheck?.test.join(' ').includes('/readyz'))
    const cfg = readFileSync(join(ROOT, 'deploy/haproxy.cfg'), 'utf8')
    assert.match(cfg, /use_backend natter_media if \{ path_beg \/v1\/media\. \}/)
    assert.match(cfg, /backend natter_media[\s\S]*server media media:8080 check/)
  })

  it('names only services and volumes that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      const deps = Array.isArray(service.depends_on)
        ? service.depends_on
        : Object.keys(service.depends_on ?? {})
      for (const dep of deps) {
        assert.ok(dep in services, `${name} depends on ${dep}, which is defined`)
      }
      for (const v of service.volumes ?? []) {
        const source = v.split(':')[0] as string
        if (!source.startsWith('.')) assert.ok(source in compose.volumes, `volume ${source} is declared`)
        else assert.ok(readFileSync(join(ROOT, source)), `${source} exists`)
      }
    }
  })

  it('balances MQTT, WebSocket and HTTP over every node, taking out those not ready', () => {
    const cfg = readFileSync(join(ROOT, 'deploy/haproxy.cfg'), 'utf8')
    assert.deepEqual(services.haproxy?.ports, ['1883:1883', '8083:8083', '8080:8080'])
    for (const backend of ['natter_mqtt', 'natter_ws', 'natter_http']) {
      const section =
        cfg.split(/\n(?=backend |frontend )/).find((s) => s.startsWith(`backend ${backend}`)) ?? ''
      assert.match(section, /option httpchk GET \/readyz/, `${backend} checks /readyz`)
      for (const n of nodes)
        assert.match(section, new RegExp(`server ${n} ${n}:\\d+ check`), `${backend} has ${n}`)
    }
  })

  it('scrapes every node into Prometheus and shows the dashboard in Grafana', () => {
    const prometheus = parse(readFileSync(join(ROOT, 'deploy/prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ metrics_path: string; static_configs: Array<{ targets: string[] }> }>
    }
    const job = prometheus.scrape_configs[0]
    assert.equal(job?.metrics_path, '/metrics')
    assert.deepEqual(
      job?.static_configs.flatMap((c) => c.targets),
      nodes.map((n) => `${n}:8080`),
    )
    const mounts = services.grafana?.volumes ?? []
    assert.ok(
      mounts.some((v) => v.startsWith('./docs/grafana-dashboard.json:')),
      'the dashboard is provisioned',
    )
  })

  it('builds an image that runs what npm start runs', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    assert.match(dockerfile, /^FROM node:24/m)
    assert.match(dockerfile, /CMD \["sh", "bin\/natter", "start"\]/)
  })
})
