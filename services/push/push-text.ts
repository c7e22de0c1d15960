import type { StoredMessage } from '../messages/message-store.ts'
import { wholeCharactersWithin } from '../text/graphemes.ts'

// The few words Natter itself writes into a notification, by language.
const WORDS: Record<string, { newMessage: string; newMessages: (n: number) => string; media: string }> = {
  en: { newMessage: 'New message', newMessages: (n) => `${n} new messages`, media: 'Photo or file' },
  de: { newMessage: 'Neue Nachricht', newMessages: (n) => `${n} neue Nachrichten`, media: 'Foto oder Datei' },
  fr: {
    newMessage: 'Nouveau message',
    newMessages: (n) => `${n} nouveaux messages`,
    media: 'Photo ou fichier',
  },
  es: { newMessage: 'Mensaje nuevo', newMessages: (n) => `${n} mensajes nuevos`, media: 'Foto o archivo' },
  it: { newMessage: 'Nuovo messaggio', newMessages: (n) => `${n} nuovi messaggi`, media: 'Foto o file' },
  pt: { newMessage: 'Nova mensagem', newMessages: (n) => `${n} novas mensagens`, media: 'Foto ou arquivo' },
  nl: { newMessage: 'Nieuw bericht', newMessages: (n) => `${n} nieuwe berichten`, media: 'Foto of bestand' },
}
const MAX_BODY = 180

function words(locale: string | null) {
  const lang = (locale ?? 'en').toLowerCase().split(/[-_]/)[0] ?? 'en'
  return WORDS[lang] ?? (WORDS.en as (typeof WORDS)['en'])
}

/**
 * Title and body of a chat's notification. The body is the newest message's text (with its
 * sender in a group), unless the device hides texts: then only how many messages are unread.
 */
export function notificationText(o: {
  chatKind: 'direct' | 'group'
  chatName: string | null
  message: StoredMessage
  unread: number
  hideText: boolean
  locale: string | null
}): { title: string; body: string } {
  const w = words(o.locale)
  const title = o.chatKind === 'group' ? (o.chatName ?? o.message.chatId) : o.message.senderId
  if (o.hideText) return { title, body: o.unread > 1 ? w.newMessages(o.unread) : w.newMessage }
  let text = o.message.text ?? w.media
  // Cut between characters (a half emoji is a lone surrogate), and in UTF-16 units: bounded in bytes.
  if (text.length > MAX_BODY) text = `${wholeCharactersWithin(text, MAX_BODY - 1)}…`
  return { title, body: o.chatKind === 'group' ? `${o.message.senderId}: ${text}` : text }
}
