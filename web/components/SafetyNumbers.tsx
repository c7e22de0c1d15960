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
              <AddDevices
                chat={chat}
                userId={n.userId}
                name={nameOf(n.userId)}
                any={false}
                onAdded={() => setVersion((v) => v + 1)}
              />
            )}
            {n.all && (
              <AddDevices
                chat={chat}
                userId={n.userId}
                name={nameOf(n.userId)}
                any
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
 * Adds a member's devices that are not in the chat's MLS group yet (`ChatState.addDevices`: any
 * member may, docs/e2ee.md §6): none of theirs when they were added before they first signed in,
 * or a new one since (another browser, or a sign-in again after signing out) while none of
 * their own devices has been online to add it. Says what came of it: devices added, or none ready.
 */
function AddDevices({
  chat,
  userId,
  name,
  any,
  onAdded,
}: {
  chat: ChatState
  userId: string
  name: string
  /** Whether some of their devices are in the group already (then only new ones are looked for). */
  any: boolean
  onAdded: () => void
}) {
  const { busy, run } = useBusy()
  const [error, setError] = useState('')
  const [added, setAdded] = useState<number | null>(null)
  return (
    <div class={any ? 'new-devices' : 'no-devices'}>
      {!any && (
        <p class="hint">
          {`None of ${name}’s devices has joined this chat’s encryption yet, so they cannot read it. Once they have signed in, add their devices.`}
        </p>
      )}
      <button
        type="button"
        class={any ? 'add-new-devices' : 'add-devices'}
        disabled={busy('add')}
        onClick={() => {
          setError('')
          setAdded(null)
          run('add', () => chat.addDevices([userId]))?.then(
            (ids) => {
              setAdded(ids.length)
              if (ids.length > 0) onAdded()
            },
            (e: unknown) => setError(sayError(e)),
          )
        }}
      >
        {any ? `Add ${name}’s new devices` : `Add ${name}’s devices`}
      </button>
      {added !== null && !error && (
        <p class="hint" role="status">
          {added > 0
            ? `Added ${added === 1 ? 'one device' : `${added} devices`} of ${name}’s: compare the number again.`
            : any
              ? `${name} has no new device ready: a new one shows once it has signed in.`
              : `None of ${name}’s devices is ready yet: they need to sign in first.`}
        </p>
      )}
      {error && <p role="alert">{error}</p>}
    </div>
  )
}
