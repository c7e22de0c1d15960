import { useSyncExternalStore } from 'preact/compat'
import { useEffect, useState } from 'preact/hooks'
import type { ChatState } from '../../client-sdk/src/index.ts'
import { useBusy } from '../busy.ts'
import { useApp } from '../context.ts'
import { sayError } from '../error-words.ts'
import { useNames } from '../names.ts'
import { Avatar } from './Avatar.tsx'

/** One member's safety number with this user, and one per device of theirs (null: not computed yet). */
interface Numbers {
  userId: string
  /** Over all their devices in the group; null when they have none there. */
  all: string | null
  devices: { deviceId: string; number: string }[]
}

/**
 * The safety numbers of an encrypted chat (docs/e2ee.md §9, the SDK's `safetyNumber`): one per
 * member, from both users' devices in the chat's MLS group, the same on both screens, and one per
 * device of theirs. Read aloud or compared side by side, a match says nobody (the server
 * included) put a device of their own between the two. Computed again when a member's devices
 * change (`devices.changed`) or the members do.
 */
export function SafetyNumbers({ chat, onClose }: { chat: ChatState; onClose: () => void }) {
  const { client, me, names } = useApp()
  const snap = useSyncExternalStore(chat.subscribe, chat.getSnapshot)
  const others = snap.members.map((m) => m.userId).filter((u) => u !== me)
  const nameOf = useNames(names, others)
  const [numbers, setNumbers] = useState<Numbers[] | null>(null)
  const [version, setVersion] = useState(0)
  const [error, setError] = useState('')
  useEffect(
    () =>
      client.on('devices.changed', (e) => {
        if (e.chatId === chat.id) setVersion((n) => n + 1)
      }),
    [client, chat],
  )
  useEffect(() => {
    let live = true
    // The group is there once this device joined (a Welcome may still be on its way).
    client
      .whenEncryptionReady(chat.id)
      .then(() =>
        Promise.all(
          others.map(async (userId): Promise<Numbers> => {
            const ids = chat.devicesOf(userId)
            if (ids.length === 0) return { userId, all: null, devices: [] }
            return {
              userId,
              all: await chat.safetyNumber(userId),
              devices: await Promise.all(
                ids.map(async (deviceId) => ({
                  deviceId,
                  number: await chat.safetyNumber(userId, deviceId),
                })),
              ),
            }
          }),
        ),
      )
      .then(
        (n) => {
          if (!live) return
          setError('')
          setNumbers(n)
        },
        (e: Error) => live && setError(`Could not work out the safety numbers: ${e.message}`),
      )
    return () => {
      live = false
    }
  }, [chat, others.join(','), version])
  return (
    <section id="safety-numbers" aria-labelledby="safety-title">
      <div class="panel-head">
        <h3 id="safety-title">Verify safety numbers</h3>
        <button type="button" class="panel-close" aria-label="Close safety numbers" onClick={onClose}>
          ×
        </button>
      </div>
      <p class="hint">
        Compare the number with the other person, side by side or read aloud on a call. If yours and theirs
        match, your messages reach their devices and nobody else’s, not even the server’s. It changes when one
        of you signs in on a new device or removes one: compare again then.
      </p>
      {error && <p role="alert">{error}</p>}
      {!numbers && !error && (
        <p class="hint">
          {chat.devicesOf(me).includes(client.deviceId)
            ? 'Working out the numbers…'
            : 'The numbers show once this device has joined the chat’s encryption.'}
        </p>
      )}
      {numbers && numbers.length === 0 && <p class="hint">Nobody else is in this chat.</p>}
      <ul class="safety-list">
        {numbers?.map((n) => (
          <li key={n.userId} data-user-id={n.userId}>
            <div class="safety-who">
              <Avatar userId={n.userId} size={24} />
              <span class="member-name">{nameOf(n.userId)}</span>
            </div>
            {n.all ? (
              <>
                <Digits number={n.all} label={`Safety number with ${nameOf(n.userId)}`} />
                {n.devices.length === 1 ? (
                  <p class="device-id" data-device-id={n.devices[0]?.deviceId}>
                    {`From their one device, ${n.devices[0]?.deviceId}.`}
                  </p>
                ) : (
                  <details class="safety-devices">
                    <summary>{`Each of their ${n.devices.length} devices`}</summary>
                    <ul>
                      {n.devices.map((d) => (
                        <li key={d.deviceId} data-device-id={d.deviceId}>
                          <span class="device-id">{d.deviceId}</span>
                          <Digits
                            number={d.number}
                            label={`Safety number with ${nameOf(n.userId)}’s device ${d.deviceId}`}
                          />
                        </li>
                      ))}
                    </ul>
                  </details>
                )}
              </>
            ) : (
              <NoDevices
                chat={chat}
                userId={n.userId}
                name={nameOf(n.userId)}
                onAdded={() => setVersion((v) => v + 1)}
              />
            )}
          </li>
        ))}
      </ul>
    </section>
  )
}

/**
 * A safety number as the SDK gives it ("12345 67890 …", 12 groups of 5 digits), laid out in rows
 * of four groups to read aloud one at a time; screen readers hear what it is first.
 */
function Digits({ number, label }: { number: string; label: string }) {
  return (
    <p class="safety-number" data-number={number}>
      <span class="visually-hidden">{`${label}: `}</span>
      {number.split(' ').map((g, i) => (
        // Positional: the same five digits may come twice.
        <span key={i} class="digits">
          {g}
        </span>
      ))}
    </p>
  )
}

/**
 * A member none of whose devices is in the group (none had KeyPackages when they were added: they
 * had not signed in with an MLS app yet). In a direct chat, `direct(…, {encrypted: true})` again
 * adds their devices (docs/e2ee.md §12); in a group the SDK has no call for it, so the way is to
 * remove them and add them again.
 */
function NoDevices({
  chat,
  userId,
  name,
  onAdded,
}: {
  chat: ChatState
  userId: string
  name: string
  onAdded: () => void
}) {
  const { client } = useApp()
  const { busy, run } = useBusy()
  const [error, setError] = useState('')
  const [tried, setTried] = useState(false)
  return (
    <div class="no-devices">
      <p class="hint">
        {`None of ${name}’s devices has joined this chat’s encryption yet, so they cannot read it. `}
        {chat.kind === 'direct'
          ? 'Once they have signed in, add their devices.'
          : 'Once they have signed in, a group admin can remove them and add them again.'}
      </p>
      {chat.kind === 'direct' && (
        <button
          type="button"
          class="add-devices"
          disabled={busy('add')}
          onClick={() => {
            setError('')
            run('add', () => client.direct(userId, { encrypted: true }))?.then(
              () => {
                setTried(true)
                onAdded()
              },
              (e: unknown) => setError(sayError(e)),
            )
          }}
        >
          {`Add ${name}’s devices`}
        </button>
      )}
      {tried && !error && (
        <p class="hint" role="status">
          {`None of ${name}’s devices is ready yet: they need to sign in first.`}
        </p>
      )}
      {error && <p role="alert">{error}</p>}
    </div>
  )
}
