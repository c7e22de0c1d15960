import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import type { Settings } from '../config/schema.ts'
import { parseAdminKeys } from '../services/admin/admin-keys.ts'

/** Thrown for a command line that cannot be run (exit code 2). */
export class AdminUsageError extends Error {}

export const ADMIN_USAGE = `  natter admin user USER                  a user's account state, profile, devices and chats
  natter admin export USER [-o FILE]      everything about USER as a zip (default natter-export-USER.zip,
                                          mode 0600; -o - writes it to stdout)
  natter admin erase USER [--wait]        erase USER (resumable; --wait: until it is done)
  natter admin ban USER [--reason TEXT]   cut USER's connections and refuse their tokens
  natter admin unban USER                 lift a ban
  natter admin chat CHAT                  a chat's members and last seq
  natter admin delete-message CHAT SEQ    delete any message (members see it deleted)
  natter admin remove-member CHAT USER    remove USER from CHAT
  natter admin audit [--after ID] [--limit N] [--actor NAME] [--action A] [--target T]
                                          the audit log, oldest first
    Admin commands call the admin API of a running node (docs/admin.md): --url or
    NATTER_ADMIN_URL (default http://127.0.0.1:<NATTER_HTTP_PORT>), with the key in
    NATTER_ADMIN_KEY, or the one named by --as (default: the first) in NATTER_ADMIN_KEYS.
`

/** The options admin commands take (parsed by cli/natter.ts). */
export interface AdminOptions {
  url?: string | undefined
  as?: string | undefined
  output?: string | undefined
  reason?: string | undefined
  wait?: boolean | undefined
  after?: string | undefined
  limit?: string | undefined
  actor?: string | undefined
  action?: string | undefined
  target?: string | undefined
}

// How often `erase --wait` asks how far the erase got, ms.
const ERASE_POLL_MS = 1000

/**
 * Runs `natter admin <command> ...` against a node's admin API, printing the JSON answer to
 * stdout (an export is written to a file). An error answer is printed to stderr as
 * `natter: <code>: <message>` and exits 1.
 *
 * @returns the process exit code
 * @throws AdminUsageError for a bad command line or no admin key
 */
export async function runAdmin(args: string[], o: AdminOptions, settings: Settings): Promise<number> {
  const [command, ...rest] = args
  const base = (o.url ?? process.env.NATTER_ADMIN_URL ?? `http://127.0.0.1:${settings.httpPort}`).replace(
    /\/+$/,
    '',
  )
  const key = adminKey(o.as, settings)
  const need = (n: number, usage: string): string[] => {
    if (rest.length !== n) throw new AdminUsageError(`usage: natter admin ${usage}`)
    return rest
  }
  const path = (...parts: string[]) => parts.map(encodeURIComponent).join('/')
  const call = (method: string, p: string, body?: unknown) =>
    fetch(`${base}/admin/v1/${p}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
  const print = async (res: Response): Promise<number> => {
    const text = await res.text()
    if (!res.ok) return failed(res.status, text)
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
    return 0
  }

  switch (command) {
    case 'user': {
      const [user] = need(1, 'user USER') as [string]
      return print(await call('GET', path('users', user)))
    }
    case 'export': {
      const [user] = need(1, 'export USER [-o FILE]') as [string]
      const file = o.output ?? `natter-export-${user.replace(/[^\w.@-]/g, '_')}.zip`
      const res = await call('GET', `${path('users', user)}/export`)
      if (!res.ok || !res.body) return failed(res.status, await res.text())
      const archive = Readable.fromWeb(res.body as WebReadableStream)
      if (file === '-') {
        await pipeline(archive, process.stdout)
        return 0
      }
      // Written beside its name, renamed when whole: a cut download leaves no zip that looks
      // complete. Readable by its owner only: it holds a person's messages and push tokens.
      const partial = `${file}.partial`
      try {
        await pipeline(archive, createWriteStream(partial, { mode: 0o600 }))
        await rename(partial, file)
      } catch (err) {
        await rm(partial, { force: true })
        throw err
      }
      process.stdout.write(`${JSON.stringify({ file })}\n`)
      return 0
    }
    case 'erase': {
      const [user] = need(1, 'erase USER [--wait]') as [string]
      const res = await call('POST', `${path('users', user)}/erase`, {})
      if (!o.wait || !res.ok) return print(res)
      await res.text()
      for (;;) {
        const state = await call('GET', path('users', user))
        if (!state.ok) return print(state)
        const body = (await state.json()) as { account: { status: string } | null }
        if (body.account?.status === 'erased') {
          process.stdout.write(`${JSON.stringify({ account: body.account })}\n`)
          return 0
        }
        await new Promise((resolve) => setTimeout(resolve, ERASE_POLL_MS))
      }
    }
    case 'ban': {
      const [user] = need(1, 'ban USER [--reason TEXT]') as [string]
      return print(await call('POST', `${path('users', user)}/ban`, o.reason ? { reason: o.reason } : {}))
    }
    case 'unban': {
      const [user] = need(1, 'unban USER') as [string]
      return print(await call('POST', `${path('users', user)}/unban`, {}))
    }
    case 'chat': {
      const [chat] = need(1, 'chat CHAT') as [string]
      return print(await call('GET', path('chats', chat)))
    }
    case 'delete-message': {
      const [chat, seq] = need(2, 'delete-message CHAT SEQ') as [string, string]
      return print(await call('DELETE', path('chats', chat, 'messages', seq)))
    }
    case 'remove-member': {
      const [chat, user] = need(2, 'remove-member CHAT USER') as [string, string]
      return print(await call('DELETE', path('chats', chat, 'members', user)))
    }
    case 'audit': {
      need(0, 'audit [--after ID] [--limit N] [--actor NAME] [--action A] [--target T]')
      const q = new URLSearchParams()
      for (const name of ['after', 'limit', 'actor', 'action', 'target'] as const) {
        const v = o[name]
        if (v !== undefined) q.set(name, v)
      }
      return print(await call('GET', `audit${q.size > 0 ? `?${q}` : ''}`))
    }
    default:
      throw new AdminUsageError(
        command ? `unknown admin command "${command}"; see natter --help` : 'usage: natter admin COMMAND ...',
      )
  }
}

/** NATTER_ADMIN_KEY, else the key of NATTER_ADMIN_KEYS named `as` (default the first). */
function adminKey(as: string | undefined, settings: Settings): string {
  const own = process.env.NATTER_ADMIN_KEY
  if (own && as === undefined) return own
  const parsed = settings.adminKeys ? parseAdminKeys(settings.adminKeys) : { keys: [] }
  const keys = 'keys' in parsed ? parsed.keys : []
  const found = as === undefined ? keys[0] : keys.find((k) => k.name === as)
  if (!found) {
    throw new AdminUsageError(
      as === undefined
        ? 'no admin key: set NATTER_ADMIN_KEY, or NATTER_ADMIN_KEYS as the node has it'
        : `no key named "${as}" in NATTER_ADMIN_KEYS`,
    )
  }
  return found.key
}

function failed(status: number, text: string): number {
  let line = `HTTP ${status}`
  try {
    const e = (JSON.parse(text) as { error?: { code: string; message: string } }).error
    if (e) line = `${e.code}: ${e.message}`
  } catch {}
  process.stderr.write(`natter: ${line}\n`)
  return 1
}
