import {
  type ChatMessage,
  createClient,
  type MessageStatus,
  type NatterClient,
  type Profile,
} from '../client-sdk/src/index.ts'
import { IndexedDbOutboxStorage } from '../client-sdk/src/indexeddb-outbox.ts'

// The web chat served by `npm start`: a small app over the client SDK, signed in with dev tokens.

interface ChatRow {
  id: string
  kind: 'direct' | 'group'
  name: string | null
  members: { userId: string }[]
  unread: number
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const TICKS: Record<MessageStatus, string> = {
  sending: '🕓',
  sent: '✓',
  delivered: '✓✓',
  read: '✓✓',
  failed: '⚠',
}

let client: NatterClient
let me = ''
let current: string | null = null
let chats: ChatRow[] = []
const thumbnails = new Map<string, Promise<{ url: string; thumbnailUrl: string | null }>>()
const typingNow = new Set<string>()
/** Display names of the users shown (null: they have none), from profile.get and profile events. */
const names = new Map<string, string | null>()
// profile.get takes up to 1,000 ids a call.
const PROFILES_PER_CALL = 1000

/** What to show for a user: their display name, else their id. */
const nameOf = (userId: string) => names.get(userId) ?? userId

async function devToken(userId: string): Promise<string> {
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  })
  const body = (await res.json()) as { token?: string; error?: { message: string } }
  if (!res.ok || !body.token) throw new Error(body.error?.message ?? `no token (${res.status})`)
  return body.token
}

/** One device id per browser and user, so that reloads keep the session and its queue. */
function deviceIdFor(userId: string): string {
  const key = `natter:device:${userId}`
  let id = localStorage.getItem(key)
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 8)}`
    localStorage.setItem(key, id)
  }
  return id
}

const peerOf = (chat: ChatRow) =>
  chat.kind === 'group'
    ? (chat.name ?? chat.id)
    : (chat.members.find((m) => m.userId !== me)?.userId ?? chat.id)

/** A chat's title: the group's name, or the other person's display name. */
const titleOf = (chat: ChatRow) => (chat.kind === 'group' ? peerOf(chat) : nameOf(peerOf(chat)))

/** Reads the display names of users not known yet (after a reconnect, events may have been missed: all). */
async function loadNames(userIds: string[], all = false): Promise<void> {
  const missing = [...new Set(userIds)].filter((u) => all || !names.has(u))
  for (let i = 0; i < missing.length; i += PROFILES_PER_CALL) {
    const { profiles, notFound } = await client.getProfiles(missing.slice(i, i + PROFILES_PER_CALL))
    for (const p of profiles) names.set(p.userId, p.displayName)
    for (const u of notFound) names.set(u, null)
  }
}

function onProfile(p: Profile): void {
  names.set(p.userId, p.displayName)
  if (p.userId === me) showMe()
  const chat = chats.find((c) => c.id === current)
  if (chat) $('peer').textContent = titleOf(chat)
  renderTyping()
  renderMessages()
  refreshSoon()
}

function showMe(): void {
  const name = names.get(me)
  $('me').textContent = `Signed in as ${name ? `${name} (${me})` : me}`
}

function renderTyping(): void {
  const who = [...typingNow].map(nameOf)
  $('typing').textContent = who.length ? `${who.join(', ')} is typing…` : ''
}

async function signIn(name: string): Promise<void> {
  const config = (await (await fetch('/web/config.json')).json()) as { wsUrl: string }
  await devToken(name)
  me = name
  const deviceId = deviceIdFor(name)
  client = await createClient({
    url: config.wsUrl,
    userId: name,
    deviceId,
    getToken: () => devToken(name),
    // Messages not yet stored by the server survive a reload.
    outbox: new IndexedDbOutboxStorage(`natter-outbox:${name}/${deviceId}`),
  })
  // For the browser console (and the browser test): the app's client.
  ;(window as unknown as { natter: NatterClient }).natter = client
  $('login').hidden = true
  $('app').hidden = false
  $('me').textContent = `Signed in as ${name}`
  client.on('state', (s) => {
    $('connection').dataset.state = s
    $('connection').textContent = s
  })
  $('connection').dataset.state = client.state
  $('connection').textContent = client.state
  client.on('message', (m) => onMessage(m))
  client.on('status', (s) => {
    if (s.chatId === current) renderMessages()
    if (s.status === 'failed') $('send-error').textContent = s.error?.message ?? 'not sent'
  })
  client.on('typing', (t) => {
    if (t.chatId !== current) return
    if (t.typing) typingNow.add(t.userId)
    else typingNow.delete(t.userId)
    renderTyping()
  })
  client.on('profile', (p) => onProfile(p))
  // Profile events are live only: after a reconnect the names shown are read again.
  client.on('state', (s) => {
    if (s !== 'connected') return
    loadNames([...names.keys()], true).then(
      () => refreshSoon(),
      () => {},
    )
  })
  client.on('presence', (p) => {
    const chat = chats.find((c) => c.id === current)
    if (chat?.kind !== 'direct' || peerOf(chat) !== p.userId) return
    const el = $('presence')
    el.className = p.online ? 'online' : ''
    el.textContent = p.online ? 'online' : `last seen ${new Date(p.lastSeenAt).toLocaleTimeString()}`
  })
  await loadNames([me])
  showMe()
  await refreshChats()
}

async function refreshChats(): Promise<void> {
  chats = (await client.listChats()) as unknown as ChatRow[]
  await loadNames(chats.flatMap((c) => c.members.map((m) => m.userId)))
  const list = $('chats')
  list.replaceChildren(
    ...chats.map((c) => {
      const li = document.createElement('li')
      li.dataset.chatId = c.id
      li.className = c.id === current ? 'active' : ''
      const name = document.createElement('span')
      name.className = 'name'
      name.textContent = titleOf(c)
      li.append(name)
      if (c.unread > 0 && c.id !== current) {
        const badge = document.createElement('span')
        badge.className = 'unread'
        badge.textContent = String(c.unread)
        li.append(badge)
      }
      li.onclick = () => void openChat(c.id)
      return li
    }),
  )
}

let refreshing: ReturnType<typeof setTimeout> | undefined
function refreshSoon(): void {
  clearTimeout(refreshing)
  refreshing = setTimeout(() => void refreshChats(), 150)
}

async function openChat(chatId: string): Promise<void> {
  current = chatId
  typingNow.clear()
  $('typing').textContent = ''
  $('conversation').hidden = false
  const chat = chats.find((c) => c.id === chatId) ?? ((await client.getChat(chatId)) as unknown as ChatRow)
  $('peer').textContent = titleOf(chat)
  $('presence').textContent = ''
  await client.open(chatId)
  if (chat.kind === 'direct') await client.watchPresence(peerOf(chat))
  renderMessages()
  await markRead()
  await refreshChats()
}

async function markRead(): Promise<void> {
  if (!current || document.visibilityState !== 'visible') return
  const last = client.messages(current).at(-1)
  if (last) await client.markRead(current, last.seq)
}

function onMessage(m: ChatMessage): void {
  if (m.chatId === current) {
    renderMessages()
    if (m.senderId !== me) void markRead()
  }
  refreshSoon()
}

function renderMessages(): void {
  if (!current) return
  const list = $('messages')
  // Messages still in the outbox (offline, or on their way) come last, with a clock; one the
  // server refused keeps its text, with why, and Retry and Cancel.
  const pending = client.pending(current).map((p) => {
    const li = document.createElement('li')
    li.className = 'mine'
    li.dataset.status = p.failed ? 'failed' : 'sending'
    const text = document.createElement('span')
    text.className = 'text'
    text.textContent = p.text ?? ''
    const ticks = document.createElement('span')
    ticks.className = 'ticks'
    ticks.textContent = p.failed ? TICKS.failed : TICKS.sending
    ticks.title = p.failed ? 'not sent' : 'sending'
    li.append(text, ticks)
    if (p.failed) {
      const why = document.createElement('span')
      why.className = 'failure'
      why.textContent = p.failed.message
      const retry = document.createElement('button')
      retry.textContent = 'Retry'
      retry.className = 'retry'
      retry.onclick = () => {
        client.retry(p.localId).sent.catch(() => {})
        renderMessages()
      }
      const cancel = document.createElement('button')
      cancel.textContent = 'Cancel'
      cancel.className = 'cancel'
      cancel.onclick = () => {
        client
          .cancel(p.localId)
          .catch(() => {})
          .finally(renderMessages)
      }
      li.append(why, retry, cancel)
    }
    return li
  })
  list.replaceChildren(...client.messages(current).map(renderMessage), ...pending)
  list.scrollTop = list.scrollHeight
}

function renderMessage(m: ChatMessage): HTMLLIElement {
  const li = document.createElement('li')
  li.dataset.seq = String(m.seq)
  if (m.kind === 'event') {
    li.className = 'event'
    li.textContent = describeEvent(m)
    return li
  }
  const mine = m.senderId === me
  li.className = mine ? 'mine' : ''
  const text = document.createElement('span')
  text.className = 'text'
  text.textContent = m.deletedAt ? 'message deleted' : (m.text ?? '')
  li.append(text)
  for (const id of m.media ?? []) li.append(mediaImage(id))
  if (mine) {
    const status = client.statusOf(m.clientMsgId) ?? 'sent'
    li.dataset.status = status
    const ticks = document.createElement('span')
    ticks.className = 'ticks'
    ticks.textContent = TICKS[status]
    ticks.title = status
    li.append(ticks)
  }
  return li
}

function describeEvent(m: ChatMessage): string {
  const e = m.event as { type?: string; members?: string[]; userId?: string } | undefined
  switch (e?.type) {
    case 'chat_created':
      return `${nameOf(m.senderId)} started the chat`
    case 'members_added':
      return `${nameOf(m.senderId)} added ${(e.members ?? []).map(nameOf).join(', ')}`
    case 'member_removed':
      return `${nameOf(m.senderId)} removed ${nameOf(e.userId ?? '')}`
    case 'member_left':
      return `${nameOf(m.senderId)} left`
    default:
      return e?.type ?? 'event'
  }
}

function mediaImage(mediaId: string): HTMLImageElement {
  const img = document.createElement('img')
  img.className = 'media'
  img.alt = 'image'
  let urls = thumbnails.get(mediaId)
  if (!urls) {
    urls = client.mediaUrl(mediaId)
    thumbnails.set(mediaId, urls)
  }
  urls.then(
    (u) => {
      img.src = u.thumbnailUrl ?? u.url
      img.onclick = () => window.open(u.url, '_blank')
    },
    () => {
      img.alt = 'image unavailable'
      thumbnails.delete(mediaId)
    },
  )
  return img
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault()
  const name = ($('name') as HTMLInputElement).value.trim()
  signIn(name).catch((err: Error) => {
    $('login-error').textContent = err.message
  })
})

$('profile').addEventListener('submit', (e) => {
  e.preventDefault()
  const input = $<HTMLInputElement>('display-name')
  const displayName = input.value.trim()
  client
    .setProfile({ displayName: displayName === '' ? null : displayName })
    .then((p) => {
      input.value = ''
      onProfile(p)
    })
    .catch((err: Error) => {
      $('send-error').textContent = err.message
    })
})

$('new-chat').addEventListener('submit', (e) => {
  e.preventDefault()
  const input = $<HTMLInputElement>('with')
  client
    .direct(input.value.trim())
    .then(async (chat) => {
      input.value = ''
      await refreshChats()
      await openChat(chat.id)
    })
    .catch((err: Error) => {
      $('send-error').textContent = err.message
    })
})

$('text').addEventListener('input', () => {
  if (current) client.typing(current)
})

$('composer').addEventListener('submit', (e) => {
  e.preventDefault()
  const input = $<HTMLInputElement>('text')
  const text = input.value.trim()
  if (!current || !text) return
  input.value = ''
  $('send-error').textContent = ''
  client.stopTyping(current)
  client.send(current, { text })
  renderMessages()
})

$('image').addEventListener('change', () => {
  const input = $<HTMLInputElement>('image')
  const file = input.files?.[0]
  if (!current || !file) return
  const chatId = current
  input.value = ''
  client
    .uploadMedia(file, { chatId, contentType: file.type, name: file.name })
    .then(({ mediaId }) => client.send(chatId, { media: [mediaId] }))
    .catch((err: Error) => {
      $('send-error').textContent = err.message
    })
})

document.addEventListener('visibilitychange', () => void markRead())
