import { parseArgs } from 'node:util'
import { createLogger } from '../broker/log.ts'
import { startMediaServer } from '../broker/media-server.ts'
import { startNode } from '../broker/node.ts'
import { ConfigError, loadConfig } from '../config/load.ts'
import { signDevToken } from '../services/auth/dev-token.ts'
import { loadSigningSecret } from '../services/auth/jwt-keys.ts'
import { useMongoLog } from '../services/storage/mongo.ts'
import { ADMIN_USAGE, AdminUsageError, runAdmin } from './admin.ts'

const USAGE = `natter: an MQTT-native chat backend

Usage:
  natter start [--config FILE]            run one node on the embedded default (the default command)
  natter media [--config FILE]            run only the media service's HTTP API (media.* operations),
                                          on the same stores as the nodes
  natter token USER [--ttl 24h] [--config FILE]
                                          print a dev token (HS256) for USER
${ADMIN_USAGE}  natter --help                           this text

Settings come from NATTER_* environment variables and an optional JSON file
(--config or NATTER_CONFIG_FILE); .env.example lists them all with their defaults.
Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad setting.
`

class UsageError extends Error {}

function parseTtl(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text)
  if (!m) throw new UsageError(`--ttl must look like 3600, 30m, 24h or 7d, not "${text}"`)
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd']
  const seconds = Number(m[1]) * unit
  if (seconds < 1 || seconds > 366 * 86400)
    throw new UsageError('--ttl must be between 1 second and 366 days')
  return seconds
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      config: { type: 'string', short: 'c' },
      ttl: { type: 'string', default: '24h' },
      // natter admin (cli/admin.ts)
      url: { type: 'string' },
      as: { type: 'string' },
      output: { type: 'string', short: 'o' },
      reason: { type: 'string' },
      wait: { type: 'boolean' },
      after: { type: 'string' },
      limit: { type: 'string' },
      actor: { type: 'string' },
      action: { type: 'string' },
      target: { type: 'string' },
    },
  })
  const [command = 'start', ...rest] = positionals
  if (values.help || command === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  const { settings, warnings } = loadConfig({ file: values.config })

  if (command === 'token') {
    const [userId, ...extra] = rest
    if (!userId || extra.length > 0) throw new UsageError('usage: natter token USER [--ttl 24h]')
    const token = await signDevToken({
      secret: loadSigningSecret(settings),
      userId,
      ttlSeconds: parseTtl(values.ttl),
      issuer: settings.jwtIssuer,
      audience: settings.jwtAudience,
    })
    process.stdout.write(`${token}\n`)
    return 0
  }

  if (command === 'admin') return runAdmin(rest, values, settings)

  if (command !== 'start' && command !== 'media') {
    throw new UsageError(`unknown command "${command}"; see natter --help`)
  }
  if (rest.length > 0) throw new UsageError(`${command} takes no arguments, got "${rest.join(' ')}"`)
  const log = createLogger(settings.logLevel)
  useMongoLog(log)
  for (const w of warnings) log.warn({ event: 'config_warning' }, w)
  const node = command === 'media' ? await startMediaServer(settings, log) : await startNode(settings, log)
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ event: 'shutdown', signal }, 'shutting down')
      node.close().then(resolve, (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        resolve()
      })
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  return 0
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (
      err instanceof ConfigError ||
      err instanceof UsageError ||
      err instanceof AdminUsageError ||
      isParseArgsError(err)
    ) {
      console.error(`natter: ${(err as Error).message}`)
      process.exit(2)
    }
    console.error(`natter: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  },
)

function isParseArgsError(err: unknown): boolean {
  return (
    typeof (err as { code?: unknown })?.code === 'string' &&
    String((err as { code: string }).code).startsWith('ERR_PARSE_ARGS')
  )
}
