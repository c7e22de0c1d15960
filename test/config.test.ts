import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { renderEnvExample } from '../config/env-example.ts'
import { ConfigError, loadConfig } from '../config/load.ts'
import { envName, settingKeys } from '../config/schema.ts'

describe('settings', () => {
  it('runs on defaults with no variables at all', () => {
    const { settings, warnings } = loadConfig({ env: {} })
    assert.equal(settings.mqttPort, 1883)
    assert.equal(settings.wsPort, 8083)
    assert.equal(settings.wsPath, '/mqtt')
    assert.equal(settings.httpPort, 8080)
    assert.equal(settings.jwtAlgorithm, 'HS256')
    assert.deepEqual(warnings, [])
  })

  it('names the setting and the value in one line when a value is wrong', () => {
    assert.throws(
      () => loadConfig({ env: { NATTER_MQTT_PORT: 'abc' } }),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message === 'invalid setting NATTER_MQTT_PORT="abc": expected an integer from 0 to 65535',
    )
    assert.throws(() => loadConfig({ env: { NATTER_HTTP_PORT: '70000' } }), /NATTER_HTTP_PORT="70000"/)
    assert.throws(() => loadConfig({ env: { NATTER_LOG_LEVEL: 'loud' } }), /NATTER_LOG_LEVEL="loud"/)
    assert.throws(
      () => loadConfig({ env: { NATTER_WS_PATH: 'mqtt' } }),
      /NATTER_WS_PATH="mqtt": expected a URL path/,
    )
  })

  it('never prints a secret, even a wrong one', () => {
    assert.throws(
      () => loadConfig({ env: { NATTER_JWT_SECRET: 'short-secret' } }),
      (err: Error) =>
        err.message === 'invalid setting NATTER_JWT_SECRET: expected at least 32 bytes (256 bits)',
    )
  })

  it('needs a public key for RS256 and ES256', () => {
    assert.throws(
      () => loadConfig({ env: { NATTER_JWT_ALGORITHM: 'ES256' } }),
      /NATTER_JWT_PUBLIC_KEY: ES256 needs jwtPublicKey or jwtPublicKeyFile/,
    )
  })

  it('refuses a cluster without a shared message store, media bucket or JWT secret', () => {
    const secret = 'x'.repeat(32)
    const s3 = { NATTER_S3_BUCKET: 'media' }
    assert.throws(
      () => loadConfig({ env: { NATTER_REDIS_URL: 'redis://r:6379', NATTER_JWT_SECRET: secret, ...s3 } }),
      /NATTER_REDIS_URL.*needs mongodbUri/,
    )
    assert.throws(
      () =>
        loadConfig({
          env: { NATTER_REDIS_URL: 'redis://r:6379', NATTER_MONGODB_URI: 'mongodb://m/natter', ...s3 },
        }),
      /NATTER_REDIS_URL.*needs jwtSecret/,
    )
    assert.throws(
      () =>
        loadConfig({
          env: {
            NATTER_REDIS_URL: 'redis://r:6379',
            NATTER_MONGODB_URI: 'mongodb://m/n',
            NATTER_JWT_SECRET: secret,
          },
        }),
      /NATTER_REDIS_URL.*needs s3Bucket/,
    )
    assert.throws(
      () =>
        loadConfig({
          env: {
            NATTER_REDIS_URL: 'http://r',
            NATTER_MONGODB_URI: 'mongodb://m/n',
            NATTER_JWT_SECRET: secret,
            ...s3,
          },
        }),
      /expected a redis:\/\/, rediss:\/\/ or redis-sentinel:\/\/ URL/,
    )
    const { settings } = loadConfig({
      env: {
        NATTER_REDIS_URL: 'redis://r:6379',
        NATTER_MONGODB_URI: 'mongodb://m/n',
        NATTER_JWT_SECRET: secret,
        ...s3,
      },
    })
    assert.equal(settings.redisUrl, 'redis://r:6379')
  })

  it('needs the APNs key file, key id and team id together', () => {
    assert.throws(
      () =>
        loadConfig({ env: { NATTER_APNS_KEY_FILE: '/keys/AuthKey.p8', NATTER_APNS_TEAM_ID: 'TEAM123456' } }),
      /NATTER_APNS_KEY_ID: apnsKeyFile, apnsKeyId and apnsTeamId go together/,
    )
    const { settings } = loadConfig({ env: { NATTER_PUSH_GRACE_MS: '500' } })
    assert.equal(settings.pushGraceMs, 500)
    assert.equal(settings.fcmCredentialsFile, undefined)
  })

  it('reads the S3 settings, and keeps the secret key out of its errors', () => {
    const { settings } = loadConfig({
      env: {
        NATTER_S3_BUCKET: 'media',
        NATTER_S3_ENDPOINT: 'http://127.0.0.1:7070',
        NATTER_S3_FORCE_PATH_STYLE: 'true',
        NATTER_S3_ACCESS_KEY_ID: 'key',
        NATTER_S3_SECRET_ACCESS_KEY: 'secret',
      },
    })
    assert.equal(settings.s3ForcePathStyle, true)
    assert.equal(settings.s3Region, 'us-east-1')
    assert.equal(settings.mediaMaxImageBytes, 16 * 1024 * 1024)
    assert.throws(
      () => loadConfig({ env: { NATTER_S3_BUCKET: 'media', NATTER_S3_SECRET_ACCESS_KEY: 'hidden-value' } }),
      (err: Error) =>
        /NATTER_S3_ACCESS_KEY_ID: s3AccessKeyId and s3SecretAccessKey go together/.test(err.message) &&
        !err.message.includes('hidden-value'),
    )
    assert.throws(
      () => loadConfig({ env: { NATTER_S3_FORCE_PATH_STYLE: 'yes' } }),
      /NATTER_S3_FORCE_PATH_STYLE="yes": expected true or false/,
    )
    assert.throws(() => loadConfig({ env: { NATTER_PUBLIC_URL: 'chat.example.com' } }), /expected an http/)
  })

  it('warns about unknown NATTER_ variables and ignores others', () => {
    const { warnings } = loadConfig({ env: { NATTER_MQT_PORT: '1', HOME: '/root', NATTER_NODE: '/x' } })
    assert.deepEqual(warnings, ['unknown environment variable NATTER_MQT_PORT is ignored'])
  })

  it('reads a JSON file, and the environment wins over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'natter-config-'))
    const file = join(dir, 'natter.json')
    writeFileSync(file, JSON.stringify({ mqttPort: 1999, httpPort: 9000, bogus: 1 }))
    const { settings, warnings } = loadConfig({ env: { NATTER_HTTP_PORT: '9001' }, file })
    assert.equal(settings.mqttPort, 1999)
    assert.equal(settings.httpPort, 9001)
    assert.deepEqual(warnings, [`unknown key "bogus" in config file ${file} is ignored`])
    writeFileSync(file, JSON.stringify({ mqttPort: 'x' }))
    assert.throws(() => loadConfig({ env: {}, file }), new RegExp(`mqttPort in ${file}="x"`))
    writeFileSync(file, '{not json')
    assert.throws(() => loadConfig({ env: {}, file }), /cannot read config file/)
  })

  it('.env.example lists every setting with its default (npm run env-example writes it)', () => {
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8')
    assert.equal(example, renderEnvExample())
    for (const key of settingKeys) assert.match(example, new RegExp(`^#? ?${envName(key)}=`, 'm'))
  })
})
