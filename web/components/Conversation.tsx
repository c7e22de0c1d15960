import { useSyncExternalStore } from 'preact/compat'
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks'
import type { ChatMessage, ChatState, OutboxItem } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { useDeviceNotices } from '../device-notices.ts'
import { sayError } from '../error-words.ts'
import { departureOf } from '../format.ts'
import { useNames } from '../names.ts'
import { useUploads } from '../uploads.ts'
import { MediaResized } from './Attachment.tsx'
import { Avatar, GroupAvatar } from './Avatar.tsx'
import { peerOf, useTitle } from './ChatList.tsx'
import { Composer, type Mode } from './Composer.tsx'
import { GroupInfo } from './GroupInfo.tsx'
import { Lock } from './Lock.tsx'
import { type MessageActions, MessageItem, PendingItem } from './MessageItem.tsx'
import { SafetyNumbers } from './SafetyNumbers.tsx'
import { Search } from './Search.tsx'
import { UploadItem } from './UploadItem.tsx'

/** The SDK's `undecryptable` for a message sent before this device joined (docs/e2ee.md §9). */
const BEFORE_JOINING = 'this device is not in the group'

/** Near enough to the top (px) to load older messages, or to the bottom to follow new ones. */
const EDGE = 150
/** A search result further back is loaded a page of this many messages at a time, at most this many pages. */
const JUMP_PAGE = 100
const JUMP_PAGES = 20
/** How long (ms) a message jumped to stays highlighted. */
const HIGHLIGHT_MS = 2500

/** Where the reader is looking: a message (its element) and its top, px from the list's top. */
interface Anchor {
  el: Element
  top: number
}

/** The first item of the list whose bottom is below the list's top edge: what the reader sees first. */
function anchorOf(list: HTMLElement): Anchor | null {
  const top = list.getBoundingClientRect().top
  for (const el of list.children) {
    const box = el.getBoundingClientRect()
    if (box.bottom > top) return { el, top: box.top - top }
  }
  return null
}

/**
 * One open chat: its state from the ChatState as an external store (subscribe, getSnapshot:
 * timeline, pending messages and changes, membership), typing and presence, infinite scroll
 * backwards (loadOlder), one debounced read receipt (markReadSoon). The view stays on what the
 * reader looks at while older pages and media above it load, and on the newest message when
 * the reader was at the bottom.
 */
export function Conversation({ chat, onBack }: { chat: ChatState; onBack: () => void }) {
  const { client, me, names, announce } = useApp()
  const title = useTitle(chat)
  const snap = useSyncExternalStore(chat.subscribe, chat.getSnapshot)
  const removed = snap.removed
  // Who took the user out, said where the composer was (the kept timeline ends with the event).
  const departure = removed ? departureOf(snap.messages, me) : null
  const nameOfRemover = useNames(names, departure ? [departure.by] : [])
  // The client forgets a chat the user was removed from, its timeline with it: the messages seen
  // until then stay on screen, read-only. Its refused messages and changes stay in the outbox,
  // whose changes no longer reach the forgotten ChatState's snapshot: read directly, redrawn at
  // each `status` of the chat.
  const seen = useRef(snap.messages)
  if (!removed) seen.current = snap.messages
  const messages = removed ? seen.current : snap.messages
  const [, bumpRemoved] = useState(0)
  useEffect(
    () =>
      client.on('status', (e) => {
        if (e.chatId === chat.id && chat.removed) bumpRemoved((n) => n + 1)
      }),
    [client, chat],
  )
  const pending = removed ? chat.pending : snap.pending
  const pendingChanges = removed ? chat.pendingChanges : snap.pendingChanges
  const [typing, setTyping] = useState<string[]>([])
  // Someone removed (or the user, removed) types no more here: not left to the typing timeout.
  useEffect(() => {
    if (removed) {
      setTyping((now) => (now.length ? [] : now))
      return
    }
    // No members yet: the summary has not loaded, which says nothing about who left.
    if (!snap.members.length) return
    const ids = new Set(snap.members.map((m) => m.userId))
    setTyping((now) => (now.some((u) => !ids.has(u)) ? now.filter((u) => ids.has(u)) : now))
  }, [snap.members, removed])
  const [presence, setPresence] = useState<{ online: boolean; lastSeenAt: number } | null>(null)
  const [connection, setConnection] = useState(client.state)
  const [error, setError] = useState('')
  const [mode, setMode] = useState<Mode>({ kind: 'new' })
  const [showInfo, setShowInfo] = useState(false)
  const [showSearch, setShowSearch] = useState(false)
  const [showSafety, setShowSafety] = useState(false)
  const encrypted = chat.encrypted
  const notices = useDeviceNotices(chat.id)
  const outside = useOutsideEncryption(chat)
  // Members none of whose devices is in the group (they had not signed in when added): what is
  // written now never reaches them, so the writer is told before, not only in Verify. Read on
  // each redraw: a Commit adding their devices is a timeline message, which redraws.
  const unreachable =
    encrypted && !removed && !outside && chat.devicesOf(me).includes(client.deviceId)
      ? snap.members.map((m) => m.userId).filter((u) => u !== me && chat.devicesOf(u).length === 0)
      : []
  const nameOfUnreachable = useNames(names, unreachable)
  const [atStart, setAtStart] = useState(false)
  const [highlight, setHighlight] = useState<number | null>(null)
  /** Messages from others that arrived below while the reader was scrolled up ("jump to latest"). */
  const [newBelow, setNewBelow] = useState(0)
  /** A message to bring into view (a search result) once it is rendered. */
  const jumpTarget = useRef<number | null>(null)
  const { store: uploadStore, uploads } = useUploads(client, chat)
  const list = useRef<HTMLOListElement>(null)
  const loading = useRef(false)
  /** The reader is at the bottom: the newest message stays in view as things arrive. */
  const follow = useRef(true)
  /** Otherwise, what the reader looks at: kept at its place on screen when things above change. */
  const anchor = useRef<Anchor | null>(null)
  /**
   * The scrollTop the app last set. Its scroll event comes a frame later, when a message may
   * have grown since (an image decoded): read then, the distance to the bottom would look like
   * the reader's doing, so such events leave `follow` and the anchor as they are.
   */
  const setTop = useRef<number | null>(null)
  const peer = chat.kind === 'direct' ? peerOf(chat, me) : null
  const nameOf = useNames(names, typing)

  /**
   * Puts the view back after the list's content changed (a render, an attachment's info or image,
   * anything that resized a message): at the bottom for a reader who follows the newest message,
   * else with the anchored message where it was on screen. The browser's own scroll anchoring is
   * off for the list (style.css): one rule, the same in every browser (Safari has none).
   */
  const keepView = useCallback(() => {
    const el = list.current
    if (!el) return
    const was = el.scrollTop
    if (follow.current) {
      el.scrollTop = el.scrollHeight
    } else {
      const a = anchor.current
      if (a?.el.isConnected) {
        const moved = a.el.getBoundingClientRect().top - el.getBoundingClientRect().top - a.top
        if (Math.abs(moved) >= 0.5) el.scrollTop += moved
      }
    }
    if (el.scrollTop !== was) setTop.current = el.scrollTop
    anchor.current = anchorOf(el)
  }, [])

  const readSoon = () => {
    if (document.visibilityState === 'visible') chat.markReadSoon()
  }

  useEffect(() => {
    let opened = false
    let live = true
    // Opened once connected (after an offline start, when the connection comes), and again
    // after a failed try: the SDK follows an opened chat across reconnects by itself.
    const open = () => {
      if (opened || client.state !== 'connected') return
      opened = true
      chat.open().then(
        () => {
          if (!live) return
          setError('')
          readSoon()
        },
        (e: Error) => {
          opened = false
          if (live) setError(sayError(e))
        },
      )
    }
    const offs = [
      chat.on('message.new', (m) => {
        if (m.senderId === me) return
        // A reader scrolled up is not pulled down: they are told how many came below.
        if (!follow.current) setNewBelow((n) => n + 1)
        readSoon()
        if (m.kind === 'text')
          announce(
            `${names.nameOf(m.senderId)}: ${m.text ?? (m.undecryptable !== undefined ? 'a message that cannot be read on this device' : 'an attachment')}`,
          )
      }),
      client.on('typing', (t) => {
        if (t.chatId !== chat.id || t.userId === me) return
        setTyping((now) =>
          t.typing ? (now.includes(t.userId) ? now : [...now, t.userId]) : now.filter((u) => u !== t.userId),
        )
      }),
      // Presence seen before a disconnect may be stale: not shown until connected again.
      client.on('state', (s) => {
        setConnection(s)
        open()
      }),
    ]
    setConnection(client.state)
    open()
    const visible = () => readSoon()
    document.addEventListener('visibilitychange', visible)
    return () => {
      live = false
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

  // After a render: older messages above, new ones below, the view where the reader was.
  useLayoutEffect(keepView, [messages, pending, uploads, atStart, pendingChanges])

  // Whatever resizes a message later (its media's info or image, a name, a font), or the list, is
  // seen after layout and before paint: the view is put back before anything shows it moved.
  useLayoutEffect(() => {
    const el = list.current
    if (!el || typeof ResizeObserver === 'undefined') return
    const seen = new ResizeObserver(() => keepView())
    // The list itself too: a panel, an error or a taller composer makes it shorter.
    seen.observe(el)
    for (const item of el.children) seen.observe(item)
    const added = new MutationObserver((records) => {
      for (const r of records) {
        for (const n of r.addedNodes) if (n instanceof Element) seen.observe(n)
        for (const n of r.removedNodes) if (n instanceof Element) seen.unobserve(n)
      }
    })
    added.observe(el, { childList: true })
    return () => {
      added.disconnect()
      seen.disconnect()
    }
  }, [keepView])

  // A search result jumped to: into view, focused for keyboard and screen reader users.
  useLayoutEffect(() => {
    const seq = jumpTarget.current
    if (seq === null) return
    const el = list.current?.querySelector<HTMLElement>(`li[data-seq="${seq}"]`)
    if (!el) return
    jumpTarget.current = null
    // Whatever scrolled meanwhile (the search panel closing clamps the list at the bottom), the
    // reader now reads here: what loads or resizes later keeps this message in place.
    follow.current = false
    el.scrollIntoView({ block: 'center' })
    el.focus({ preventScroll: true })
    if (list.current) {
      setTop.current = list.current.scrollTop
      anchor.current = anchorOf(list.current)
    }
  }, [messages, highlight])

  useEffect(() => {
    if (highlight === null) return
    const timer = setTimeout(() => setHighlight(null), HIGHLIGHT_MS)
    return () => clearTimeout(timer)
  }, [highlight])

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
      setError(`Could not load the message: ${sayError(e)}`)
      return
    }
    if (!held()) {
      setError('That message is too far back to show here.')
      return
    }
    jumpTarget.current = seq
    setHighlight(seq)
  }

  const onScroll = () => {
    const el = list.current
    if (!el) return
    const mine = setTop.current !== null && Math.abs(el.scrollTop - setTop.current) < 1
    setTop.current = null
    if (mine) return
    follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < EDGE
    if (follow.current) setNewBelow(0)
    anchor.current = anchorOf(el)
    if (el.scrollTop < EDGE && !loading.current && !atStart && messages.length > 0) {
      if ((messages[0]?.seq ?? 1) <= 1) {
        setAtStart(true)
        return
      }
      loading.current = true
      // The page comes into the timeline (a new snapshot) and renders above the anchor.
      chat.loadOlder(50).then(
        (n) => {
          loading.current = false
          if (n === 0) setAtStart(true)
        },
        () => {
          loading.current = false
        },
      )
    }
  }

  const bySeq = useMemo(() => new Map(messages.map((m) => [m.seq, m])), [messages])
  /**
   * The timeline as shown: messages sent before this device joined an encrypted chat (which it
   * can never read: MLS gives no history) as one line per run rather than a bubble each; the
   * Commits between them show nothing unless they changed someone's devices.
   */
  const shown = useMemo(() => {
    const out: (ChatMessage | { first: ChatMessage; unreadable: number })[] = []
    let run: ChatMessage[] = []
    const flush = () => {
      if (run.length > 1) out.push({ first: run[0] as ChatMessage, unreadable: run.length })
      else out.push(...run)
      run = []
    }
    for (const m of messages) {
      if (m.undecryptable === BEFORE_JOINING && m.deletedAt === null) run.push(m)
      else if (run.length && m.event?.type === 'mls_device_revoked') continue
      else if (run.length && m.event?.type === 'mls_commit' && !notices.has(Number(m.event.epoch))) continue
      else {
        flush()
        out.push(m)
      }
    }
    flush()
    return out
  }, [messages, notices])
  const actions = useMemo<MessageActions>(
    () => ({
      reply: (m) => setMode({ kind: 'reply', to: m }),
      edit: (m) => setMode({ kind: 'edit', of: m }),
      verify: () => {
        setShowSafety(true)
        setShowInfo(false)
        setShowSearch(false)
      },
      remove: (m) => {
        // A refusal the outbox keeps shows on the message (Retry, Cancel); anything else here.
        chat.delete(m.seq).catch((e: Error) => {
          if (!chat.pendingChanges.some((c) => c.seq === m.seq && c.failed)) setError(sayError(e))
        })
      },
    }),
    [chat],
  )
  const uploadActions = useMemo(
    () => ({ cancel: (id: string) => uploadStore.cancel(id), retry: (id: string) => uploadStore.retry(id) }),
    [uploadStore],
  )
  // A failed message, edit or delete: sent again, or dropped (the snapshot shows either).
  const retry = useCallback(
    (localId: string) => {
      try {
        chat.retry(localId).sent.catch(() => {})
      } catch (e) {
        setError(sayError(e))
      }
    },
    [chat],
  )
  const editUnsent = useCallback((item: OutboxItem) => setMode({ kind: 'fix', item }), [])
  const cancel = useCallback(
    (localId: string) => {
      chat.cancel(localId).catch((e: Error) => setError(sayError(e)))
    },
    [chat],
  )
  /** The user's edits and deletes of each message that wait in the outbox or were refused, by seq. */
  const changesBySeq = useMemo(() => {
    const by = new Map<number, OutboxItem[]>()
    for (const c of pendingChanges) {
      if (c.seq === undefined) continue
      by.set(c.seq, [...(by.get(c.seq) ?? []), c])
    }
    return by
  }, [pendingChanges])

  const members = snap.members
  const admins = members.filter((m) => m.role === 'admin').length
  return (
    <main id="conversation" aria-label={`Chat with ${title}`}>
      <header>
        <button type="button" id="back" aria-label="Back to chats" onClick={onBack}>
          ←
        </button>
        {peer ? <Avatar userId={peer} size={40} /> : <GroupAvatar name={title} size={40} />}
        <div class="heading">
          <h2 id="peer">{title}</h2>
          <div class="subline">
            {encrypted && removed && (
              // No safety numbers to open once removed: the lock only says what the chat was.
              <span id="e2ee-badge">
                <Lock label={null} size={12} />
                <span class="badge-label">End-to-end encrypted</span>
              </span>
            )}
            {encrypted && !removed && (
              // Also the way to the safety numbers where the header has no room for Verify (a phone).
              <button
                type="button"
                id="e2ee-badge"
                aria-expanded={showSafety}
                title="Verify safety numbers"
                onClick={() => setShowSafety(!showSafety)}
              >
                <Lock label={null} size={12} />
                <span class="badge-label">End-to-end encrypted</span>
                <span class="visually-hidden">: verify safety numbers</span>
              </button>
            )}
            {chat.kind === 'direct' ? (
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
                  : `${members.length} member${members.length === 1 ? '' : 's'}${admins ? `, ${admins} admin${admins > 1 ? 's' : ''}` : ''}`}
              </span>
            )}
          </div>
        </div>
        {/* Once removed there is nothing to search: the server refuses, and the device forgot the chat. */}
        {!removed && (
          <button
            type="button"
            id="search-button"
            aria-expanded={showSearch}
            class="icon-button"
            onClick={() => setShowSearch(!showSearch)}
          >
            <Icon d="M7 2a5 5 0 1 0 3.2 8.8l3.5 3.5 1-1-3.5-3.5A5 5 0 0 0 7 2Zm0 1.5a3.5 3.5 0 1 1 0 7 3.5 3.5 0 0 1 0-7Z" />
            <span class="button-label">Search</span>
          </button>
        )}
        {encrypted && !removed && (
          <button
            type="button"
            id="verify-button"
            class="icon-button"
            aria-expanded={showSafety}
            onClick={() => setShowSafety(!showSafety)}
          >
            <Icon d="M8 1 2.5 3v4.5c0 3.4 2.3 6.3 5.5 7.5 3.2-1.2 5.5-4.1 5.5-7.5V3L8 1Zm-1 10L4.5 8.5l1-1L7 9l3.5-3.5 1 1L7 11Z" />
            <span class="button-label">Verify</span>
          </button>
        )}
        {chat.kind === 'group' && (
          <button
            type="button"
            id="info"
            class="icon-button"
            aria-expanded={showInfo}
            onClick={() => setShowInfo(!showInfo)}
          >
            <Icon d="M6 8a3 3 0 1 0 0-6 3 3 0 0 0 0 6Zm5.5 0a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5ZM1 14c0-2.8 2.2-4.5 5-4.5s5 1.7 5 4.5v.5H1V14Zm11.2.5V14c0-1.5-.5-2.8-1.4-3.7 2.5 0 4.2 1.4 4.2 3.7v.5h-2.8Z" />
            <span class="button-label">Members</span>
          </button>
        )}
      </header>
      {showSearch && !removed && <Search chat={chat} onJump={jumpTo} onClose={() => setShowSearch(false)} />}
      {showInfo && chat.kind === 'group' && <GroupInfo chat={chat} removed={removed} onError={setError} />}
      {showSafety && encrypted && !removed && (
        <SafetyNumbers chat={chat} onClose={() => setShowSafety(false)} />
      )}
      <MediaResized.Provider value={keepView}>
        <ol id="messages" ref={list} onScroll={onScroll} aria-label="Messages">
          {atStart && <li class="start">This is the start of the chat</li>}
          {encrypted && (atStart || (messages[0]?.seq ?? 1) <= 1) && (
            <li class="e2ee-intro">
              <Lock label={null} size={12} /> Messages here are end-to-end encrypted: only the members’
              devices can read them, not the server. A device that joins later cannot read what was sent
              before.
            </li>
          )}
          {shown.map((m) =>
            'unreadable' in m ? (
              <li key={m.first.seq} data-seq={m.first.seq} class="event unreadable-run">
                {`${m.unreadable} earlier messages were sent before this device joined the chat, so they cannot be read here.`}
              </li>
            ) : (
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
                encrypted={encrypted}
                notices={m.kind === 'event' ? notices.get(Number(m.event?.epoch)) : undefined}
                changes={changesBySeq.get(m.seq)}
                onRetry={retry}
                onCancel={cancel}
              />
            ),
          )}
          {pending.map((p) => (
            <PendingItem
              key={p.localId}
              item={p}
              readOnly={removed}
              // The SDK encrypts a message once: a retry with other text would send the first.
              editable={!encrypted}
              onRetry={retry}
              onCancel={cancel}
              onEdit={editUnsent}
            />
          ))}
          {uploads.map((u) => (
            <UploadItem key={u.id} u={u} onCancel={uploadActions.cancel} onRetry={uploadActions.retry} />
          ))}
        </ol>
      </MediaResized.Provider>
      {newBelow > 0 && (
        <div class="jump-row">
          <button
            type="button"
            id="jump-latest"
            onClick={() => {
              follow.current = true
              setNewBelow(0)
              keepView()
            }}
          >
            {`${newBelow} new message${newBelow === 1 ? '' : 's'} ↓`}
          </button>
        </div>
      )}
      <div id="typing">
        {typing.length ? `${typing.map(nameOf).join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…` : ''}
      </div>
      {error && (
        <p id="send-error" role="alert">
          {error}
        </p>
      )}
      {outside && !removed && (
        <p id="e2ee-waiting" class="hint waiting-note" role="status">
          This device has not joined the chat’s encryption yet: it cannot read what is sent here, and what you
          write waits. It joins when another device of yours connects, or when someone in the chat adds your
          new devices from their Verify panel.
        </p>
      )}
      {unreachable.length > 0 && (
        <p id="e2ee-unreachable" class="hint waiting-note" role="status">
          {`${unreachable.map(nameOfUnreachable).join(', ')} cannot read what is sent here: none of their devices has joined the chat’s encryption yet. Once they have signed in, add their devices in `}
          <button type="button" class="link-button" onClick={() => setShowSafety(true)}>
            Verify
          </button>
          .
        </p>
      )}
      {removed ? (
        <p class="removed">
          {departure?.left
            ? 'You left this chat.'
            : departure
              ? `${nameOfRemover(departure.by)} removed you from this chat.`
              : 'You are no longer a member of this chat.'}
        </p>
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
    </main>
  )
}

/** How long (ms) a device may take to join an encrypted chat it was just added to before the page says it is not in. */
const JOINING_MS = 2000

/**
 * Whether this device is outside an encrypted chat's MLS group (docs/e2ee.md §6, §9): added to
 * the chat while none of its devices had KeyPackages, say, so nobody's Commit added it. Said only
 * after JOINING_MS, not while a Welcome is on its way; checked again when it joins or a member's
 * devices change.
 */
function useOutsideEncryption(chat: ChatState): boolean {
  const { client, me } = useApp()
  const [outside, setOutside] = useState(false)
  useEffect(() => {
    if (!chat.encrypted) return
    const isIn = () => chat.devicesOf(me).includes(client.deviceId)
    let timer: ReturnType<typeof setTimeout> | undefined
    const check = () => {
      clearTimeout(timer)
      if (isIn()) setOutside(false)
      else timer = setTimeout(() => setOutside(!isIn()), JOINING_MS)
    }
    check()
    const offs = [
      client.on('encryption.ready', (e) => e.chatId === chat.id && check()),
      client.on('devices.changed', (e) => e.chatId === chat.id && check()),
    ]
    return () => {
      clearTimeout(timer)
      for (const off of offs) off()
    }
  }, [client, chat, me])
  return outside
}

/** A 16×16 icon in the text colour, beside a button's label (the label alone names the button). */
function Icon({ d }: { d: string }) {
  return (
    <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">
      <path d={d} fill="currentColor" />
    </svg>
  )
}
