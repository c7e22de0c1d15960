import type { Operations } from './operations.ts'
import type { RequestRouter } from './router.ts'

/** Operations about the caller's own connection. */
export function registerSessionOps(router: RequestRouter, ops: Operations): void {
  router.register('whoami', {
    params: ops.whoami.params,
    handle: (ctx) => ({
      userId: ctx.who.userId,
      deviceId: ctx.who.deviceId,
      tokenExpiresAt: ctx.tokenExpiresAt,
    }),
  })
}
