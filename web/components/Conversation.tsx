import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { ChatMessage, ChatState, OutboxItem } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { useNames } from '../names.ts'
import { useUploads } from '../uploads.ts'
import { MediaResized } from './Attachment.tsx'
import { Avatar, GroupAvatar } from './Avatar.tsx'
import { peerOf, useTitle } from './ChatList.tsx'
import { Composer, type Mode } from './Composer.tsx'
import { GroupInfo } from './GroupInfo.tsx'
import { type MessageActions, MessageItem, PendingItem } from './MessageItem.tsx'
import { Search } from './Search.tsx'
import { UploadItem } from './UploadItem.tsx'

/** Near enough to the top (px) to load older messages, or to the bottom to follow new ones. */
const EDGE = 150
/** A search result further back is loaded a page of this many messages at a time, at most this many pages. */
const JUMP_PAGE = 100
const JUMP_PAGES = 20
/** How long (ms) a message jumped to stays highlighted. */
const HIGHLIGHT_MS = 2500

/**
 * One open chat: its timeline from the ChatState (message.new/updated/deleted redraw only the
 * messages that changed), the user's pending messages, typing and presence, infinite scroll
 * backwards (loadOlder), one debounced read receipt (markReadSoon).
 */
export function Conversation({ chat, onBack }: { chat: ChatState; onBack: () => void }) {
  const { client, me, names, announce } = useApp()
  const title = useTitle(chat)
  const [messages, setMessages] = useState<ChatMessage[]>(() => chat.messages)
  const [pending, setPending] = useState<OutboxItem[]>(() => chat.pending)
  const [, bumpStatus] = useState(0)
  const [typing, setTyping] = useState<string[]>([])
  const [presence, setPresence] = useState<{ online: boolean; lastSeenAt: number } | null>(null)
  const [connection, setConnection] = useState(client.state)
  const [removed, setRemoved] = useState(chat.removed)
  const [error, setError] = useState('')
  const [mode, setMode] = useState<Mode>({ kind: 'new' })
  const [showInfo, setShowInfo] = useState(false)
  const [showSearch, setShowSearch] = useState(false)
  const [atStart, setAtStart] = useState(false)
  const [highlight, setHighlight] = useState<number | null>(null)
  /** A message to bring into view (a search result) once it is rendered. */
  const jumpTarget = useRef<number | null>(null)
  const { store: uploadStore, uploads } = useUploads(client, chat)
  const list = useRef<HTMLOListElement>(null)
  const loading = useRef(false)
  /** Where the view was before an update: following the newest, or this far from the bottom. */
  const follow = useRef(true)
  const keepFromBottom = useRef<number | null>(null)
  const peer = chat.kind === 'direct' ? peerOf(chat, me) : null
  const nameOf = useNames(names, typing)

  const readSoon = () => {
    if (document.visibilityState === 'visible') chat.markReadSoon()
  }

  useEffect(() => {
    const refresh = () => setMessages(chat.messages)
    const offs = [
      chat.on('message.new', (m) => {
        refresh()
        if (m.senderId !== me) {
          readSoon()
          if (m.kind === 'text') announce(`${names.nameOf(m.senderId)}: ${m.text ?? 'an image'}`)
        }
      }),
      chat.on('message.updated', refresh),
      chat.on('message.deleted', refresh),
      chat.on('status', () => {
        setPending(chat.pending)
        bumpStatus((n) => n + 1)
      }),
      client.on('typing', (t) => {
        if (t.chatId !== chat.id || t.userId === me) return
        setTyping((now) =>
          t.typing ? (now.includes(t.userId) ? now : [...now, t.userId]) : now.filter((u) => u !== t.userId),
        )
      }),
      // Presence seen before a disconnect may be stale: not shown until connected again.
      client.on('state', setConnection),
      client.on('chat.removed', (r) => {
        if (r.chatId === chat.id) setRemoved(true)
      }),
    ]
    // What came between the first render and the subscriptions.
    refresh()
    setConnection(client.state)
    const visible = () => readSoon()
    document.addEventListener('visibilitychange', visible)
    chat.open().then(
      () => {
        refresh()
        setPending(chat.pending)
        readSoon()
      },
      (e: Error) => setError(e.message),
    )
    return () => {
      for (const off of offs) off()
      document.removeEventListener('visibilitychange', visible)
    }
  }, [chat])

  useEffect(() => {
    if (!peer) return
    const off = client.on('presence', (p) => {
      if (p.userId === peer) setPresence({ online: p.online, lastSeenAt: p.lastSeenAt })
    })
    client.watchPresence(peer).catch(() => {})
    return off
  }, [client, peer])

  // After a render: keep the view where the reader was (older messages above, new ones below).
  useLayoutEffect(() => {
    const el = list.current
    if (!el) return
    if (keepFromBottom.current !== null) {
      el.scrollTop = el.scrollHeight - keepFromBottom.current
      keepFromBottom.current = null
    } else if (follow.current) {
      el.scrollTop = el.scrollHeight
    }
  }, [messages, pending, uploads])

  // A search result jumped to: into view, focused for keyboard and screen reader users.
  useLayoutEffect(() => {
    const seq = jumpTarget.current
    if (seq === null) return
    const el = list.current?.querySelector<HTMLElement>(`li[data-seq="${seq}"]`)
    if (!el) return
    jumpTarget.current = null
    el.scrollIntoView({ block: 'center' })
    el.focus({ preventScroll: true })
  }, [messages, highlight])

  useEffect(() => {
    if (highlight === null) return
    const timer = setTimeout(() => setHighlight(null), HIGHLIGHT_MS)
    return () => clearTimeout(timer)
  }, [highlight])

  /** An attachment grew (its info or image came): the reader at the bottom stays there. */
  const mediaResized = useMemo(
    () => () => {
      const el = list.current
      if (el && follow.current && keepFromBottom.current === null) el.scrollTop = el.scrollHeight
    },
    [],
  )

  /**
   * Shows the message with this seq: older pages are loaded until the timeline holds it (at most
   * JUMP_PAGES pages), then it is scrolled into view and highlighted.
   */
  const jumpTo = async (seq: number) => {
    setShowSearch(false)
    setError('')
    follow.current = false
    const held = () => chat.messages.some((m) => m.seq === seq)
    try {
      for (let i = 0; i < JUMP_PAGES && !held(); i++) {
        loading.current = true
        const n = await chat.loadOlder(JUMP_PAGE).finally(() => {
          loading.current = false
        })
        if (n === 0) {
          setAtStart(true)
          break
        }
      }
    } catch (e) {
      setMessages(chat.messages)
      setError(`Could not load the message: ${(e as Error).message}`)
      return
    }
    if (!held()) {
      setError('That message is too far back to show here.')
      return
    }
    jumpTarget.current = seq
    setMessages(chat.messages)
    setHighlight(seq)
  }

  const onScroll = () => {
    const el = list.current
    if (!el) return
    follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < EDGE
    if (el.scrollTop < EDGE && !loading.current && !atStart && messages.length > 0) {
      if ((messages[0]?.seq ?? 1) <= 1) {
        setAtStart(true)
        return
      }
      loading.current = true
      chat.loadOlder(50).then(
        (n) => {
          loading.current = false
          if (n === 0) setAtStart(true)
          keepFromBottom.current = el.scrollHeight - el.scrollTop
          setMessages(chat.messages)
        },
        () => {
          loading.current = false
        },
      )
    }
  }

  const bySeq = useMemo(() => new Map(messages.map((m) => [m.seq, m])), [messages])
  const actions = useMemo<MessageActions>(
    () => ({
      reply: (m) => setMode({ kind: 'reply', to: m }),
      edit: (m) => setMode({ kind: 'edit', of: m }),
      remove: (m) => {
        chat.delete(m.seq).catch((e: Error) => setError(e.message))
      },
    }),
    [chat],
  )
  const uploadActions = useMemo(
    () => ({ cancel: (id: string) => uploadStore.cancel(id), retry: (id: string) => uploadStore.retry(id) }),
    [uploadStore],
  )
  const retry = (localId: string) => {
    chat.retry(localId).sent.catch(() => {})
    setPending(chat.pending)
  }
  const cancel = (localId: string) => {
    chat
      .cancel(localId)
      .catch(() => {})
      .finally(() => setPending(chat.pending))
  }

  const members = chat.members
  const admins = members.filter((m) => m.role === 'admin').length
  return (
    <section id="conversation" aria-label={`Chat with ${title}`}>
      <header>
        <button type="button" id="back" aria-label="Back to chats" onClick={onBack}>
          ←
        </button>
        {peer ? <Avatar userId={peer} size={40} /> : <GroupAvatar name={title} size={40} />}
        <div class="heading">
          <h2 id="peer">{title}</h2>
          {peer ? (
            <span id="presence" class={presence?.online && connection === 'connected' ? 'online' : ''}>
              {presence && connection === 'connected'
                ? presence.online
                  ? 'online'
                  : `last seen ${new Date(presence.lastSeenAt).toLocaleTimeString()}`
                : ''}
            </span>
          ) : (
            <span id="group-summary">
              {removed
                ? 'You are no longer a member'
                : `${members.length} members${admins ? `, ${admins} admin${admins > 1 ? 's' : ''}` : ''}`}
            </span>
          )}
        </div>
        <button
          type="button"
          id="search-button"
          aria-expanded={showSearch}
          onClick={() => setShowSearch(!showSearch)}
        >
          Search
        </button>
        {chat.kind === 'group' && (
          <button type="button" id="info" aria-expanded={showInfo} onClick={() => setShowInfo(!showInfo)}>
            Members
          </button>
        )}
      </header>
      {showSearch && <Search chat={chat} onJump={jumpTo} onClose={() => setShowSearch(false)} />}
      {showInfo && chat.kind === 'group' && <GroupInfo chat={chat} removed={removed} onError={setError} />}
      <MediaResized.Provider value={mediaResized}>
        <ol id="messages" ref={list} onScroll={onScroll} aria-label="Messages">
          {atStart && <li class="start">This is the start of the chat</li>}
          {messages.map((m) => (
            <MessageItem
              key={m.seq}
              m={m}
              mine={m.senderId === me}
              group={chat.kind === 'group'}
              status={m.senderId === me ? client.statusOf(m.clientMsgId) : undefined}
              quoted={m.replyTo !== undefined ? bySeq.get(m.replyTo) : undefined}
              actions={actions}
              readOnly={removed}
              highlighted={m.seq === highlight}
            />
          ))}
          {pending.map((p) => (
            <PendingItem key={p.localId} item={p} readOnly={removed} onRetry={retry} onCancel={cancel} />
          ))}
          {uploads.map((u) => (
            <UploadItem key={u.id} u={u} onCancel={uploadActions.cancel} onRetry={uploadActions.retry} />
          ))}
        </ol>
      </MediaResized.Provider>
      <div id="typing">
        {typing.length ? `${typing.map(nameOf).join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…` : ''}
      </div>
      {error && (
        <p id="send-error" role="alert">
          {error}
        </p>
      )}
      {removed ? (
        <p class="removed">You are no longer a member of this chat.</p>
      ) : (
        <Composer
          chat={chat}
          mode={mode}
          setMode={setMode}
          onError={setError}
          onAttach={(file) => {
            follow.current = true
            uploadStore.start(file)
          }}
        />
      )}
    </section>
  )
}
