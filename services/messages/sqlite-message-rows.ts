import type { StoredMessage } from './message-store.ts'

/** messages.db's tables, and how a row becomes a message: shared by the reader and the writer thread. */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  chat_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sender_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  client_msg_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  text TEXT,
  body TEXT NOT NULL,
  at INTEGER NOT NULL,
  edited_at INTEGER,
  deleted_at INTEGER,
  PRIMARY KEY (chat_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id ON messages (chat_id, sender_id, client_msg_id);
CREATE INDEX IF NOT EXISTS messages_at ON messages (at);
CREATE INDEX IF NOT EXISTS messages_chat_at ON messages (chat_id, at);
CREATE INDEX IF NOT EXISTS messages_changed ON messages (chat_id, coalesce(deleted_at, edited_at))
  WHERE deleted_at IS NOT NULL OR edited_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS message_terms (
  chat_id TEXT NOT NULL,
  term TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (chat_id, term, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chat_seq (chat_id TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
`

export interface MessageRow {
  chat_id: string
  seq: number
  sender_id: string
  device_id: string
  client_msg_id: string
  kind: string
  text: string | null
  body: string
  at: number
  edited_at: number | null
  deleted_at: number | null
}

export function toMessage(r: MessageRow): StoredMessage {
  return {
    chatId: r.chat_id,
    seq: r.seq,
    senderId: r.sender_id,
    deviceId: r.device_id,
    clientMsgId: r.client_msg_id,
    kind: r.kind as StoredMessage['kind'],
    text: r.text,
    body: JSON.parse(r.body) as Record<string, unknown>,
    at: r.at,
    editedAt: r.edited_at,
    deletedAt: r.deleted_at,
  }
}
