import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import type { NewMessage } from '../services/messages/message-store.ts'
import { searchTerms } from '../services/messages/search-terms.ts'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'
import { chatTag, searchIndexPath } from '../services/messages/sqlite-search-index.ts'
import { messageStoreContract } from './contract/message-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

messageStoreContract('SQLite', () => sqliteHarness('messages.db', (path) => new SqliteMessageStore(path)))

const msg = (chatId: string, clientMsgId: string, text: string | null = 'hello'): NewMessage => ({
  chatId,
  senderId: 'alice',
  deviceId: 'phone',
  clientMsgId,
  kind: 'text',
  text,
  body: {},
})

/** The messages table and its client-id index as the layouts before the search index file had them. */
const OLD_MESSAGES_TABLE = `
  CREATE TABLE messages (chat_id TEXT NOT NULL, seq INTEGER NOT NULL, sender_id TEXT NOT NULL,
    device_id TEXT NOT NULL, client_msg_id TEXT NOT NULL, kind TEXT NOT NULL, text TEXT, body TEXT NOT NULL,
    at INTEGER NOT NULL, edited_at INTEGER, deleted_at INTEGER, PRIMARY KEY (chat_id, seq)) WITHOUT ROWID;
  CREATE UNIQUE INDEX messages_client_id ON messages (chat_id, sender_id, client_msg_id);`

/** Writes messages the way another connection would: rows and the chat's counter, no search terms. */
function writeRaw(path: string, chatId: string, texts: string[], withTerms = false): void {
  const db = new DatabaseSync(path)
  try {
    db.exec('PRAGMA busy_timeout = 5000')
    db.exec('BEGIN IMMEDIATE')
    const last =
      (db.prepare('SELECT last FROM chat_seq WHERE chat_id = ?').get(chatId) as { last: number } | undefined)
        ?.last ?? 0
    const insert = db.prepare(
      `INSERT INTO messages (chat_id, seq, sender_id, device_id, client_msg_id, kind, text, body, at)
       VALUES (?, ?, 'bob', 'laptop', ?, 'text', ?, '{}', ?)`,
    )
    // withTerms: a file of the schema before FTS5, which kept a row per chat, term and message.
    const term = withTerms
      ? db.prepare('INSERT INTO message_terms (chat_id, term, seq) VALUES (?, ?, ?)')
      : null
    for (const [i, text] of texts.entries()) {
      insert.run(chatId, last + i + 1, `raw-${last + i + 1}`, text, Date.now())
      if (term) for (const t of searchTerms(text)) term.run(chatId, t, last + i + 1)
    }
    db.prepare(
      'INSERT INTO chat_seq (chat_id, last) VALUES (?, ?) ON CONFLICT (chat_id) DO UPDATE SET last = excluded.last',
    ).run(chatId, last + texts.length)
    db.exec('COMMIT')
  } finally {
    db.close()
  }
}

describe('SQLite message store: search terms written after the commit', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'natter-sqlite-terms-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('indexes at start what a crash left without terms', async () => {
    const path = join(dir, 'crash.db')
    const store = new SqliteMessageStore(path)
    await store.append(msg('c', 'm1', 'indexed before'))
    await store.close()
    // As if the process died between the commit of these messages and the one of their terms.
    writeRaw(path, 'c', ['lost words one', 'lost words two'])
    const reopened = new SqliteMessageStore(path)
    try {
      // The indexer's first slice of catch-up runs before it serves a request: purgeErased, a
      // round-trip to the writer and then the indexer, waits for it.
      await reopened.purgeErased()
      const db = new DatabaseSync(searchIndexPath(path), { readOnly: true })
      assert.deepEqual(
        { ...db.prepare("SELECT indexed FROM search_chats WHERE chat_id = 'c'").get() },
        { indexed: 3 },
      )
      const { num } = db.prepare("SELECT num FROM search_chats WHERE chat_id = 'c'").get() as { num: number }
      assert.equal(
        (
          db
            .prepare('SELECT count(*) AS n FROM message_search WHERE message_search MATCH ?')
            .get(`"${chatTag(num)}lost"`) as {
            n: number
          }
        ).n,
        2,
      )
      db.close()
      assert.deepEqual(
        (await reopened.search('c', 'lost words', 10)).map((m) => m.seq),
        [3, 2],
      )
      assert.equal((await reopened.append(msg('c', 'm4'))).message.seq, 4)
    } finally {
      await reopened.close()
    }
  })

  it('keeps acknowledged messages searchable after the process is killed before their terms', async () => {
    const path = join(dir, 'killed.db')
    const storeUrl = new URL('../services/messages/sqlite-message-store.ts', import.meta.url).href
    // The child appends, then dies at once: the terms commit waits for a timer that never fires.
    const script = join(dir, 'append-and-die.mjs')
    writeFileSync(
      script,
      `const { SqliteMessageStore } = await import(${JSON.stringify(storeUrl)})
       const store = new SqliteMessageStore(${JSON.stringify(path)})
       const base = { chatId: 'k', senderId: 'alice', deviceId: 'phone', kind: 'text', body: {} }
       await Promise.all(Array.from({ length: 20 }, (_, i) =>
         store.append({ ...base, clientMsgId: 'k' + i, text: 'acknowledged words ' + i })))
       process.kill(process.pid, 'SIGKILL')`,
    )
    const child = spawnSync(process.execPath, [script], { encoding: 'utf8' })
    assert.equal(child.signal, 'SIGKILL', child.stderr)
    const store = new SqliteMessageStore(path)
    try {
      assert.equal((await store.search('k', 'acknowledged', 100)).length, 20)
      assert.deepEqual(
        (await store.search('k', 'words 7', 10)).map((m) => m.clientMsgId),
        ['k7'],
      )
    } finally {
      await store.close()
    }
  })

  it('drops the terms of an edit, a tombstone, an erasure and a retention delete committed just before a crash', async () => {
    const path = join(dir, 'changes-killed.db')
    const storeUrl = new URL('../services/messages/sqlite-message-store.ts', import.meta.url).href
    // The child indexes its messages, then holds the index file's write lock on a connection of
    // its own: the writer commits the four changes into messages.db, the indexer cannot commit
    // them into its file, and the process dies there.
    const script = join(dir, 'change-and-die.mjs')
    writeFileSync(
      script,
      `const { DatabaseSync } = await import('node:sqlite')
       const { SqliteMessageStore } = await import(${JSON.stringify(storeUrl)})
       const store = new SqliteMessageStore(${JSON.stringify(path)})
       const m = (chatId, senderId, clientMsgId, text) =>
         ({ chatId, senderId, deviceId: 'phone', clientMsgId, kind: 'text', text, body: {} })
       await store.append(m('x', 'alice', 'e', 'oldword stays'))
       await store.append(m('x', 'alice', 't', 'tombword'))
       await store.append(m('x', 'eve', 'r1', 'eraseword one'))
       await store.append(m('x', 'eve', 'r2', 'eraseword two'))
       await store.append(m('r', 'alice', 'old', 'retainword'), 1000)
       await store.append(m('r', 'alice', 'new', 'keptword'))
       for (const [chat, word] of [['x', 'oldword'], ['x', 'tombword'], ['x', 'eraseword'], ['r', 'retainword']])
         if ((await store.search(chat, word, 10)).length === 0) throw new Error('not indexed: ' + word)
       const lock = new DatabaseSync(${JSON.stringify(searchIndexPath(path))})
       lock.exec('BEGIN IMMEDIATE')
       // The edit waits for the indexer, which waits for the lock: the writer's requests that
       // follow it answer once it is committed in messages.db.
       store.edit('x', 1, 'newword stays', Date.now()).catch(() => {})
       await store.tombstone('x', 2, Date.now())
       if ((await store.eraseSender('x', 'eve', 10)) !== 2) throw new Error('erase')
       if ((await store.deleteOlderThan(2000)) !== 1) throw new Error('retention')
       process.kill(process.pid, 'SIGKILL')`,
    )
    const child = spawnSync(process.execPath, [script], { encoding: 'utf8' })
    assert.equal(child.signal, 'SIGKILL', child.stderr)
    const store = new SqliteMessageStore(path)
    try {
      // The log is applied again before the indexer serves a request.
      await store.purgeErased()
      const db = new DatabaseSync(searchIndexPath(path), { readOnly: true })
      const count = (chatId: string, word: string) => {
        const { num } = db.prepare('SELECT num FROM search_chats WHERE chat_id = ?').get(chatId) as {
          num: number
        }
        const [term] = searchTerms(word)
        return (
          db
            .prepare('SELECT count(*) AS n FROM message_search WHERE message_search MATCH ?')
            .get(`"${chatTag(num)}${term}"`) as { n: number }
        ).n
      }
      const counts = {
        oldword: count('x', 'oldword'),
        newword: count('x', 'newword'),
        stays: count('x', 'stays'),
        tombword: count('x', 'tombword'),
        eraseword: count('x', 'eraseword'),
        retainword: count('r', 'retainword'),
        keptword: count('r', 'keptword'),
      }
      db.close()
      assert.deepEqual(counts, {
        oldword: 0,
        newword: 1,
        stays: 1,
        tombword: 0,
        eraseword: 0,
        retainword: 0,
        keptword: 1,
      })
      assert.deepEqual(await store.search('x', 'oldword', 10), [])
      assert.deepEqual(
        (await store.search('x', 'newword', 10)).map((m) => m.seq),
        [1],
      )
      // The log's rows go with the writer's next change once the index file holds a later one
      // (an edit resolves after the indexer wrote it and told the writer).
      await store.edit('r', 2, 'keptword again', Date.now())
      await store.edit('r', 2, 'keptword once more', Date.now())
      const messagesDb = new DatabaseSync(path, { readOnly: true })
      const left = messagesDb.prepare('SELECT chat_id, from_seq, to_seq FROM search_changes').all()
      messagesDb.close()
      assert.deepEqual(
        left.map((r) => ({ ...r })),
        [{ chat_id: 'r', from_seq: 2, to_seq: 2 }],
      )
    } finally {
      await store.close()
    }
  })

  it('finds messages another connection added while it runs, and numbers its next append after them', async () => {
    const path = join(dir, 'other-writer.db')
    const store = new SqliteMessageStore(path)
    try {
      await store.append(msg('o', 'm1', 'mine'))
      writeRaw(path, 'o', ['seeded history', 'more seeded history'])
      // The writer knew seq 1 as the last: the insert of seq 2 fails and it reads the table again.
      const next = await store.append(msg('o', 'm4', 'after the seeding'))
      assert.equal(next.message.seq, 4)
      // Terms of 1 and 4 were pending together: the chat's mark stays at 1, before the gap.
      assert.deepEqual(
        (await store.search('o', 'seeded', 10)).map((m) => m.seq),
        [3, 2],
      )
      assert.deepEqual(
        (await store.search('o', 'after', 10)).map((m) => m.seq),
        [4],
      )
      // The catch-up indexed 4 again: had its first terms stayed in the index, the edit would
      // leave 'after' found.
      await store.edit('o', 4, 'changed words', Date.now())
      assert.deepEqual(await store.search('o', 'after', 10), [])
      assert.deepEqual(
        (await store.search('o', 'changed', 10)).map((m) => m.seq),
        [4],
      )
      assert.equal(await store.lastSeq('o'), 4)
      assert.deepEqual(
        (await store.after('o', 0, 10)).map((m) => m.seq),
        [1, 2, 3, 4],
      )
    } finally {
      await store.close()
    }
  })

  it('takes FTS5 keywords and punctuation in a query as words, and searches one chat only', async () => {
    const path = join(dir, 'fts-words.db')
    const store = new SqliteMessageStore(path)
    try {
      await store.append(msg('w1', 'a', 'cats AND dogs, NOT birds: near "the" zoo*'))
      await store.append(msg('w1', 'b', 'cats only'))
      await store.append(msg('w2', 'c', 'cats and dogs in another chat'))
      for (const query of ['and', 'NOT', 'near', '"the"', 'zoo*', 'DOGS,', '(birds)']) {
        assert.deepEqual(
          (await store.search('w1', query, 10)).map((m) => m.clientMsgId),
          ['a'],
          query,
        )
      }
      assert.deepEqual(
        (await store.search('w1', 'cats', 10)).map((m) => m.clientMsgId),
        ['b', 'a'],
      )
      assert.deepEqual(
        (await store.search('w2', 'cats', 10)).map((m) => m.clientMsgId),
        ['c'],
      )
      assert.deepEqual(await store.search('w3', 'cats', 10), [])
    } finally {
      await store.close()
    }
  })

  it('refuses a whole batch that fails and leaves no gap in the seqs', async () => {
    const path = join(dir, 'failed-batch.db')
    const store = new SqliteMessageStore(path)
    try {
      await store.append(msg('f', 'm1'))
      const results = await Promise.allSettled([
        store.append(msg('f', 'm2')),
        // kind is NOT NULL: the insert fails with something other than a duplicate.
        store.append({ ...msg('f', 'bad'), kind: null as unknown as 'text' }),
        store.append(msg('f', 'm3')),
      ])
      assert.deepEqual(
        results.map((r) => r.status),
        ['rejected', 'rejected', 'rejected'],
      )
      assert.equal(await store.lastSeq('f'), 1)
      assert.equal((await store.append(msg('f', 'm2'))).message.seq, 2)
      assert.deepEqual(
        (await store.after('f', 0, 10)).map((m) => m.seq),
        [1, 2],
      )
    } finally {
      await store.close()
    }
  })

  it('opens a data directory written before search moved to FTS5, and indexes it again', async () => {
    const path = join(dir, 'old.db')
    // An older schema: messages_at, search terms as rows of message_terms written in the commit.
    const db = new DatabaseSync(path)
    db.exec(`
      PRAGMA journal_mode = WAL;
      ${OLD_MESSAGES_TABLE}
      CREATE INDEX messages_at ON messages (at);
      CREATE INDEX messages_chat_at ON messages (chat_id, at);
      CREATE TABLE message_terms (chat_id TEXT NOT NULL, term TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (chat_id, term, seq)) WITHOUT ROWID;
      CREATE TABLE chat_seq (chat_id TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
    `)
    db.close()
    writeRaw(path, 'old', ['from the old days', 'old but gold'], true)
    const store = new SqliteMessageStore(path)
    try {
      // A round-trip to the indexer waits for its first slice of catch-up (see above).
      await store.purgeErased()
      const check = new DatabaseSync(path, { readOnly: true })
      assert.equal(check.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'messages_at'").get(), undefined)
      assert.equal(check.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'message_terms'").get(), undefined)
      check.close()
      const index = new DatabaseSync(searchIndexPath(path), { readOnly: true })
      assert.deepEqual(
        { ...index.prepare("SELECT indexed FROM search_chats WHERE chat_id = 'old'").get() },
        { indexed: 2 },
      )
      index.close()
      assert.deepEqual(
        (await store.search('old', 'old', 10)).map((m) => m.seq),
        [2, 1],
      )
      assert.equal((await store.append(msg('old', 'new'))).message.seq, 3)
    } finally {
      await store.close()
    }
  })
  it('drops the search index an earlier layout kept inside messages.db, and builds it in its own file', async () => {
    const path = join(dir, 'in-file-index.db')
    // The layout before the index moved out: FTS5 tables beside the messages, in one file.
    const db = new DatabaseSync(path)
    db.exec(`
      PRAGMA journal_mode = WAL;
      ${OLD_MESSAGES_TABLE}
      CREATE INDEX messages_chat_at ON messages (chat_id, at);
      CREATE TABLE chat_seq (chat_id TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE search_chats (num INTEGER PRIMARY KEY, chat_id TEXT NOT NULL UNIQUE, indexed INTEGER NOT NULL DEFAULT 0);
      CREATE VIRTUAL TABLE message_search USING fts5(terms, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii');
      CREATE TABLE search_version (one INTEGER PRIMARY KEY CHECK (one = 1), terms INTEGER NOT NULL, layout INTEGER NOT NULL);
      INSERT INTO search_version VALUES (1, 2, 2);
      INSERT INTO search_chats (chat_id, indexed) VALUES ('in', 2);
      INSERT INTO message_search (rowid, terms) VALUES ((1 << 32) | 1, '000001stalewordonly');
    `)
    db.close()
    writeRaw(path, 'in', ['kept in one file', 'one file no more'])
    const store = new SqliteMessageStore(path)
    try {
      const check = new DatabaseSync(path, { readOnly: true })
      for (const name of ['message_search', 'search_chats', 'search_version'])
        assert.equal(check.prepare('SELECT 1 FROM sqlite_schema WHERE name = ?').get(name), undefined, name)
      check.close()
      assert.deepEqual(
        (await store.search('in', 'file', 10)).map((m) => m.seq),
        [2, 1],
      )
      assert.deepEqual(await store.search('in', 'stalewordonly', 10), [])
      assert.equal((await store.append(msg('in', 'new', 'file three'))).message.seq, 3)
      assert.deepEqual(
        (await store.search('in', 'file', 10)).map((m) => m.seq),
        [3, 2, 1],
      )
    } finally {
      await store.close()
    }
  })

  it('indexes again, a slice at a time, a file indexed by an older searchTerms', async () => {
    const path = join(dir, 'old-terms.db')
    const store = new SqliteMessageStore(path)
    await store.append(msg('v', 'zh', '我家在上海东边。'))
    await store.append(msg('v', 'en', 'pineapple pizza'))
    // More messages than one slice of the catch-up (1,000) in another chat.
    await Promise.all(
      Array.from({ length: 4_500 }, (_, i) => store.append(msg('big', `b${i}`, `病院 number ${i}`))),
    )
    await store.close()
    // As version 1 left it: no search_version, one token per regex run of letters and digits,
    // not tagged by chat, and every chat marked indexed.
    const indexPath = searchIndexPath(path)
    const db = new DatabaseSync(indexPath)
    db.prepare('ATTACH DATABASE ? AS m').run(path)
    db.exec('DROP TABLE search_version; DELETE FROM message_search;')
    const insert = db.prepare('INSERT INTO message_search (rowid, terms) VALUES ((?1 << 32) | ?2, ?3)')
    const rows = db
      .prepare('SELECT c.num, m.seq, m.text FROM m.messages m JOIN search_chats c USING (chat_id)')
      .all() as Array<{ num: number; seq: number; text: string }>
    for (const r of rows)
      insert.run(r.num, r.seq, [...new Set(r.text.toLowerCase().match(/[\p{L}\p{N}]+/gu))].join(' '))
    assert.ok(
      (
        db
          .prepare(
            'SELECT min(indexed = (SELECT last FROM m.chat_seq s WHERE s.chat_id = c.chat_id)) AS ok FROM search_chats c',
          )
          .get() as { ok: number }
      ).ok,
    )
    // And 40,000 more in a third chat, written straight into the tables: about a second of work.
    db.exec(`
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
      INSERT INTO m.messages (chat_id, seq, sender_id, device_id, client_msg_id, kind, text, body, at)
      SELECT 'huge', i, 'bob', 'laptop', 'h' || i, 'text', 'Straße ' || i, '{}', 1 FROM n;
      INSERT INTO m.chat_seq (chat_id, last) VALUES ('huge', 40000);
      INSERT INTO search_chats (chat_id, indexed) VALUES ('huge', 40000);
    `)
    db.close()

    const reopened = new SqliteMessageStore(path)
    try {
      // Appends go on while the catch-up runs (they wait for one slice, not for all of it), and
      // are found with the rest.
      await reopened.append(msg('big', 'after', '病院 again'))
      const progress = new DatabaseSync(indexPath, { readOnly: true })
      progress.prepare('ATTACH DATABASE ? AS m').run(path)
      const behind = progress
        .prepare(
          'SELECT count(*) AS n FROM search_chats s JOIN m.chat_seq c USING (chat_id) WHERE s.indexed < c.last',
        )
        .get() as { n: number }
      progress.close()
      assert.ok(behind.n > 0, 'the catch-up is still under way')
      assert.deepEqual(
        (await reopened.search('v', '上海', 10)).map((m) => m.seq),
        [1],
      )
      assert.deepEqual(
        (await reopened.search('v', 'pine', 10)).map((m) => m.seq),
        [2],
      )
      assert.equal((await reopened.search('big', '病院', 10_000)).length, 4_501)
      assert.deepEqual(
        (await reopened.search('big', 'number 4499 ', 10)).map((m) => m.clientMsgId),
        ['b4499'],
      )
      assert.deepEqual(
        (await reopened.search('huge', 'STRASSE 39999', 10)).map((m) => m.seq),
        [39999],
      )
      const check = new DatabaseSync(indexPath, { readOnly: true })
      assert.deepEqual(
        { ...check.prepare('SELECT terms, layout FROM search_version').get() },
        { terms: 2, layout: 2 },
      )
      // The old, untagged tokens went with the old index.
      assert.equal(
        (
          check
            .prepare(`SELECT count(*) AS n FROM message_search WHERE message_search MATCH '"pineapple"'`)
            .get() as { n: number }
        ).n,
        0,
      )
      check.close()
    } finally {
      await reopened.close()
    }
  })
})

describe('SQLite message store: erased text leaves the files', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'natter-sqlite-purge-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  /** Which of the words some file of the store (messages and search index, each with -wal and -shm) still holds, as raw bytes. */
  const leftIn = (path: string, words: string[]): string[] => {
    const files = [path, searchIndexPath(path)]
      .flatMap((f) => [f, `${f}-wal`, `${f}-shm`])
      .filter(existsSync)
      .map((f) => readFileSync(f))
    // The search index stores a term after the part it shares with the one before it (and every
    // term of a chat shares its tag): the words are looked for without their first letter.
    return words.filter((w) => files.some((bytes) => bytes.includes(Buffer.from(w.slice(1)))))
  }

  it("holds none of a sender's texts after eraseSender and purgeErased, another sender's still found", async () => {
    const path = join(dir, 'purge.db')
    const store = new SqliteMessageStore(path)
    const alice = ['xylophonicus', 'quetzalcoatlid', 'brontosaurine', 'pterodactylic', 'ornithopterix']
    try {
      const base = { chatId: 'p', deviceId: 'phone', kind: 'text' as const, body: {} }
      await store.append({ ...base, senderId: 'alice', clientMsgId: 'a1', text: 'the xylophonicus plays' })
      await store.append({ ...base, senderId: 'bob', clientMsgId: 'b1', text: 'marmaladewise answer' })
      await store.append({ ...base, senderId: 'alice', clientMsgId: 'a2', text: 'quetzalcoatlid flies' })
      await store.append({ ...base, senderId: 'alice', clientMsgId: 'a3', text: 'brontosaurine first' })
      // Filler over many pages and several search segments, in this chat and another.
      for (let round = 0; round < 4; round++) {
        await Promise.all(
          Array.from({ length: 300 }, (_, i) =>
            store.append({
              ...base,
              chatId: i % 2 ? 'p' : 'q',
              senderId: 'bob',
              clientMsgId: `f${round}-${i}`,
              text: `filler words ${round} ${i}`,
            }),
          ),
        )
        await store.search('p', 'filler', 1)
      }
      // Edited: the first text must go as well as the second.
      await store.edit('p', 4, 'pterodactylic second', Date.now())
      await store.append({ ...base, senderId: 'alice', clientMsgId: 'a4', text: 'ornithopterix tombstoned' })
      await store.search('p', 'ornithopterix', 1)
      await store.tombstone('p', await store.lastSeq('p'), Date.now())
      assert.equal((await store.search('p', 'pterodactylic', 10)).length, 1)
      assert.deepEqual(leftIn(path, alice), alice, 'the files hold them before')

      while ((await store.eraseSender('p', 'alice', 2)) > 0) {}
      const started = performance.now()
      await store.purgeErased()
      const ms = performance.now() - started

      assert.deepEqual(leftIn(path, alice), [], `purged in ${ms.toFixed(1)} ms`)
      assert.deepEqual(leftIn(path, ['marmaladewise']), ['marmaladewise'])
      assert.deepEqual(
        (await store.search('p', 'marmaladewise', 10)).map((m) => m.senderId),
        ['bob'],
      )
      assert.equal((await store.search('q', 'filler', 1000)).length, 600)
      for (const word of alice) assert.deepEqual(await store.search('p', word, 10), [])
      // The store goes on as before.
      await store.append({ ...base, senderId: 'bob', clientMsgId: 'b2', text: 'marmaladewise again' })
      assert.equal((await store.search('p', 'marmaladewise', 10)).length, 2)
    } finally {
      await store.close()
    }
    // And after a restart, nothing comes back.
    assert.deepEqual(leftIn(path, alice), [])
  })
})
