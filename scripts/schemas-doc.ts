import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { settingsShape } from '../config/schema.ts'
import {
  messageEventSchema,
  presenceEventSchema,
  profileEventSchema,
  receiptEventSchema,
  sendSchema,
  typingEventSchema,
  typingSchema,
} from '../services/messages/wire.ts'
import {
  errorNoticeSchema,
  httpErrorSchema,
  replySchema,
  requestSchema,
} from '../services/requests/envelope.ts'
import { MAX_PAGE_SIZE, operations } from '../services/requests/operations.ts'

/** docs/schemas.md: every payload's JSON Schema, made from the schemas the server validates with. */
export function renderSchemasDoc(): string {
  const json = (schema: z.ZodType) =>
    JSON.stringify(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }), null, 2)
  const out = [
    '# Natter payload schemas',
    '',
    'Made by `npm run docs:schemas` from the schemas the server validates with; a test fails when this',
    'file and the code disagree. [protocol.md](protocol.md) explains the topics and the flow.',
    '',
    '## Payloads',
    '',
  ]
  const payloads: Array<[string, z.ZodType]> = [
    ['Chat message (device → server)', sendSchema],
    ['Typing indicator (device → server)', typingSchema],
    ['Request (device → server)', requestSchema],
    ['Reply (server → device)', replySchema],
    ['Error notice (server → device)', errorNoticeSchema],
    ['Message event (server → user)', messageEventSchema],
    ['Receipt event (server → user)', receiptEventSchema],
    ['Profile event (server → user)', profileEventSchema],
    ['Typing event (server → members)', typingEventSchema],
    ['Presence (server, retained)', presenceEventSchema],
    ['HTTP error (server → HTTP client)', httpErrorSchema],
  ]
  for (const [title, schema] of payloads) {
    out.push(`### ${title}`, '', schema.description ?? '', '', '```json', json(schema), '```', '')
  }
  out.push(
    '## Operation params',
    '',
    'For `req/<op>` over MQTT and `POST /v1/<op>` over HTTP, with the default limits.',
    '',
  )
  const ops = operations({
    maxGroupMembers: settingsShape.maxGroupMembers.parse(undefined),
    maxPageSize: MAX_PAGE_SIZE,
  })
  for (const [op, o] of Object.entries(ops)) {
    out.push(`### \`${op}\``, '', o.summary, '', '```json', json(o.params), '```', '')
  }
  return out.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(renderSchemasDoc())
