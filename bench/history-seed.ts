import { randomBytes } from 'node:crypto'
import { DatabaseSync } from 'node:sqlite'
import { chatTag, searchIndexPath } from '../services/messages/sqlite-search-index.ts'

/**
 * Writes a large history straight into a running node's messages.db and its search index file
 * (messages-search.db, attached; WAL lets it write beside the node), in one statement per chat: sending a million messages through MQTT first would
 * take most of the benchmark's time budget. Rows look like what the send path writes, search
 * terms included (searchTerms of each text), and each chat's search mark and sequence counter
 * move past them: later sends continue without a gap, and no search or restart has to index
 * them first. The node's writer keeps each chat's next seq in memory and re-reads a chat that
 * another connection wrote to, so seeded chats must be new to the running node or quiet.
 */
export function seedHistory(
  dbPath: string,
  chats: Array<{ id: string; members: [string, string] }>,
  perChat: number,
) {
  const db = new DatabaseSync(dbPath)
  db.exec('PRAGMA busy_timeout = 10000')
  db.prepare('ATTACH DATABASE ? AS search').run(searchIndexPath(dbPath))
  const last = db.prepare('SELECT last FROM chat_seq WHERE chat_id = ?')
  const insert = db.prepare(`
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
    INSERT INTO messages (chat_id, seq, sender_id, device_id, client_msg_id, kind, text, body, at)
    SELECT :chat, :from + i, CASE i % 2 WHEN 0 THEN :a ELSE :b END, 'phone', :tag || i, 'text',
           'seeded message ' || i || ' ' || :filler, '{}', :at + i
    FROM n`)
  // The search document of 'seeded message <i> <filler>' is that text's words (searchTerms:
  // lower case already, once each), each behind the chat's tag (searchDocument).
  const terms = db.prepare(`
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
    INSERT INTO search.message_search (rowid, terms)
    SELECT (:num << 32) | (:from + i), :chatTag || 'seeded ' || :chatTag || 'message ' || :chatTag || i || ' ' || :chatTag || :filler FROM n`)
  const chatNum = db.prepare(
    'INSERT INTO search.search_chats (chat_id) VALUES (?) ON CONFLICT (chat_id) DO UPDATE SET chat_id = excluded.chat_id RETURNING num',
  )
  const setIndexed = db.prepare('UPDATE search.search_chats SET indexed = max(indexed, ?) WHERE num = ?')
  const setLast = db.prepare(
    'INSERT INTO chat_seq (chat_id, last) VALUES (?, ?) ON CONFLICT (chat_id) DO UPDATE SET last = excluded.last',
  )
  const filler = 'x'.repeat(70)
  const tag = `seed-${randomBytes(4).toString('hex')}-`
  const at = Date.now() - perChat * 1000
  for (const chat of chats) {
    db.exec('BEGIN IMMEDIATE')
    const from = (last.get(chat.id) as { last: number } | undefined)?.last ?? 0
    insert.run({
      count: perChat,
      chat: chat.id,
      from,
      a: chat.members[0],
      b: chat.members[1],
      tag,
      filler,
      at,
    })
    const { num } = chatNum.get(chat.id) as { num: number }
    terms.run({ count: perChat, num, from, filler, chatTag: chatTag(num) })
    setIndexed.run(from + perChat, num)
    setLast.run(chat.id, from + perChat)
    db.exec('COMMIT')
  }
  db.close()
}
