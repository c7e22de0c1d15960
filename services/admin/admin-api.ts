import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import { z } from 'zod'
import { ID_PATTERN } from '../auth/identity.ts'
import { type ErrorCode, httpStatusOf, NatterError } from '../requests/envelope.ts'
import { HttpError, sendJson } from '../requests/http-errors.ts'
import { parseJsonBody, readBody } from '../requests/json-body.ts'
import { decodePathPart } from '../requests/request-target.ts'
import { type AdminKey, adminKeyChecker } from './admin-keys.ts'
import type { AuditStore, NewAuditEntry } from './audit-store.ts'

/** Every admin route lives under this path. */
export const ADMIN_PREFIX = '/admin/v1/'
/** Largest admin request body, in bytes: bodies hold a reason at most. */
const MAX_BODY_BYTES = 16 * 1024
/** Calls without a valid credential that one address may make per minute; more get 429 unwritten. */
const FAILED_AUTH_PER_MINUTE = 10
/** Largest audit page. */
export const MAX_AUDIT_PAGE = 1000

/** What one route is asked: the path's parts, the query, the JSON body, and the caller. */
export interface AdminCall {
  path: Record<string, string>
  query: URLSearchParams
  body: unknown
  /** The admin credential's name. */
  actor: string
}

/**
 * A route's answer: JSON with a status, or a body the route writes itself (an archive). A
 * streamed answer's audit entry is written once the stream ended, with `ok` or `internal`.
 */
export type AdminAnswer =
  | { status: number; json: unknown }
  | {
      stream: (res: ServerResponse) => Promise<Record<string, unknown>>
      headers: Record<string, string>
    }

/** One admin route. */
export interface AdminRoute {
  method: 'GET' | 'POST' | 'DELETE'
  /** Path under ADMIN_PREFIX with `{name}` parts, e.g. `users/{userId}/ban`. */
  path: string
  /** The action written to the audit log, e.g. `user.ban`. */
  action: string
  /** The audit entry's target, from the path's parts. */
  target: (path: Record<string, string>) => string | null
  /** The audit entry's params, from the call (never message text). */
  params?: (call: AdminCall) => Record<string, unknown>
  handle: (call: AdminCall) => Promise<AdminAnswer>
}

interface CompiledRoute extends AdminRoute {
  regex: RegExp
  names: string[]
}

const compile = (r: AdminRoute): CompiledRoute => {
  const names: string[] = []
  const source = r.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    names.push(name)
    return '([^/]+)'
  })
  return { ...r, names, regex: new RegExp(`^${source}$`) }
}

/**
 * Natter's admin API (docs/admin.md): routes under /admin/v1/ for operators, authenticated by an
 * admin credential (NATTER_ADMIN_KEYS, `Authorization: Bearer <key>`), never by a user token.
 * Every call with a valid credential (to an unknown route too, as action `unknown`), and every
 * call refused for its credential (at most FAILED_AUTH_PER_MINUTE per address), is written to the audit log before its answer goes out
 * (a streamed answer: when it ended). A call that changes something (POST, DELETE) is first
 * written as `started` (status 0), and refused with 500 `internal`, nothing done, when that
 * entry cannot be written; its outcome entry follows (logged as `audit_outcome_lost` when it
 * cannot be written). A read whose entry cannot be written is answered 500.
 *
 * Errors are the catalogue's (docs/protocol.md#errors): unauthorized (401), not_found (404: no
 * such route, or the admin API is off), method_not_allowed (405), bad_request (400), and those
 * the routes raise.
 *
 * @returns the HTTP port's handler for paths under ADMIN_PREFIX
 */
export function createAdminApi(d: {
  keys: AdminKey[]
  audit: AuditStore
  routes: AdminRoute[]
  log: Logger
}) {
  const routes = d.routes.map(compile)
  const actorOf = adminKeyChecker(d.keys)
  const failures = new RateLimiterMemory({ points: FAILED_AUTH_PER_MINUTE, duration: 60 })

  const write = async (e: NewAuditEntry) => {
    try {
      await d.audit.append(e)
    } catch (err) {
      d.log.error({ err, action: e.action }, 'could not write the audit log')
      throw new HttpError('internal', 'the audit log could not be written: nothing was done')
    }
  }
  // After a change was made its outcome cannot be undone: an entry that cannot be written is
  // logged instead (its `started` entry is in the log), and the caller gets the real answer.
  const writeAfterChange = async (e: NewAuditEntry) => {
    try {
      await d.audit.append(e)
    } catch (err) {
      d.log.error({ err, event: 'audit_outcome_lost', entry: e }, 'could not write an admin call’s outcome')
    }
  }

  return async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    if (d.keys.length === 0) throw new HttpError('not_found', `no route ${url.pathname}`)
    const rest = url.pathname.slice(ADMIN_PREFIX.length)
    let matched: { route: CompiledRoute; parts: string[] } | undefined
    const allowed = new Set<string>()
    for (const route of routes) {
      const m = route.regex.exec(rest)
      if (!m) continue
      allowed.add(route.method)
      if (route.method !== req.method && !(route.method === 'GET' && req.method === 'HEAD')) continue
      matched = { route, parts: m.slice(1) }
      break
    }
    // A call that matches no route is written too, as `unknown` with its path: probing counts.
    const route: AdminRoute = matched?.route ?? {
      method: 'GET',
      path: '',
      action: 'unknown',
      target: () => `path:${url.pathname.slice(0, 200)}`,
      handle: async () => {
        if (allowed.size === 0) throw new HttpError('not_found', `no admin route ${url.pathname}`)
        const allow = [...allowed].join(', ')
        throw new HttpError('method_not_allowed', `use ${allow}`, { allow })
      },
    }
    const path: Record<string, string> = {}
    let badPart: string | null = null
    if (matched) {
      const { names } = matched.route as CompiledRoute
      names.forEach((name, i) => {
        const decoded = decodePathPart(matched.parts[i] as string)
        if (decoded === null || !ID_PATTERN.test(decoded)) badPart ??= name
        else path[name] = decoded
      })
    }
    const remote = req.socket.remoteAddress ?? null
    const entry = (
      result: string,
      status: number,
      actor: string | null,
      params: Record<string, unknown>,
    ) => ({
      at: Date.now(),
      actor,
      action: route.action,
      target: badPart === null ? safeTarget(route, path) : null,
      params,
      result,
      status,
      remote,
    })

    const actor = actorOf(req.headers.authorization)
    if (actor === null) {
      const over = await failures.consume(remote ?? 'unknown').then(
        () => false,
        () => true,
      )
      if (over) {
        throw new HttpError(
          'rate_limited',
          'too many calls without a valid admin key: try again in a minute',
          {
            'retry-after': '60',
          },
        )
      }
      await write(entry('unauthorized', 401, null, {}))
      throw new HttpError('unauthorized', 'an Authorization: Bearer <admin key> header is required', {
        'www-authenticate': 'Bearer realm="natter-admin"',
      })
    }

    // A call that changes something is written as `started` before it runs, so no change is
    // ever made that the log lacks; its outcome follows. A read is written once, with its outcome.
    const changes = route.method !== 'GET' && matched !== undefined
    const outcome = changes ? writeAfterChange : write
    let call: AdminCall | undefined
    let started = false
    let answer: AdminAnswer
    try {
      if (badPart !== null) throw new HttpError('bad_request', `${badPart} is not a valid id`)
      const body = req.method === 'POST' ? parseJsonBody(await readBody(req, MAX_BODY_BYTES), 8) : {}
      call = { path, query: url.searchParams, body, actor }
      if (changes) {
        await write(entry('started', 0, actor, paramsOf(route, call)))
        started = true
      }
      answer = await route.handle(call)
    } catch (err) {
      const refusal = refusalOf(err)
      const params = call ? paramsOf(route, call) : {}
      // The log that refused the `started` entry is not tried again.
      if (changes && call && !started) throw refusal ?? err
      if (!refusal) {
        await outcome(entry('internal', 500, actor, params))
        throw err
      }
      // A refusal before the `started` entry (a bad id or body) changed nothing.
      await (started ? outcome : write)(entry(refusal.code, httpStatusOf(refusal.code), actor, params))
      throw refusal
    }
    if ('json' in answer) {
      await outcome(entry('ok', answer.status, actor, paramsOf(route, call)))
      return sendJson(res, answer.status, answer.json)
    }
    res.writeHead(200, { ...answer.headers, 'cache-control': 'no-store' })
    if (req.method === 'HEAD') {
      await write(entry('ok', 200, actor, paramsOf(route, call)))
      return void res.end()
    }
    try {
      const summary = await answer.stream(res)
      await write(entry('ok', 200, actor, { ...paramsOf(route, call), ...summary }))
    } catch (err) {
      // The caller went away, or the archive failed: either way it was not delivered whole.
      const gone = res.destroyed && !res.writableFinished
      await write(entry(gone ? 'aborted' : 'internal', 200, actor, paramsOf(route, call))).catch(() => {})
      throw err
    }
  }
}

/** A route's refusal as an HttpError, or null when err is a server fault. */
function refusalOf(err: unknown): HttpError | null {
  if (err instanceof HttpError) return err
  if (err instanceof NatterError) return new HttpError(err.code as ErrorCode & HttpError['code'], err.message)
  if (err instanceof z.ZodError) {
    const issue = err.issues[0]
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : ''
    return new HttpError('bad_request', `${where}${issue?.message ?? 'bad request'}`)
  }
  return null
}

const paramsOf = (route: AdminRoute, call: AdminCall): Record<string, unknown> => {
  try {
    return route.params?.(call) ?? {}
  } catch {
    return {}
  }
}

const safeTarget = (route: AdminRoute, path: Record<string, string>): string | null => {
  try {
    return route.target(path)
  } catch {
    return null
  }
}
