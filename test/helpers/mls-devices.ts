import { Device } from './device.ts'
import { type MlsMember, newKeyPackage } from './mls.ts'

/** Where a device connects: a node's MQTT URL and the access tokens it accepts. */
export interface NodeAccess {
  mqttUrl: string
  token(userId: string): Promise<string>
}

/**
 * Protocol-level devices (raw MQTT, {@link Device}) of one test file, kept for
 * {@link Devices.closeAll}. The node is read at each connect: it starts in a `before`.
 */
export class Devices {
  /** Every device connected so far. */
  readonly all: Device[] = []

  private readonly node: () => NodeAccess

  /** @param node the node to connect to, read at each connect. */
  constructor(node: () => NodeAccess) {
    this.node = node
  }

  /** A new connection of device `userId/deviceId` with a fresh token; rejects as Device.connect does. */
  async connect(userId: string, deviceId: string): Promise<Device> {
    const t = this.node()
    const d = await Device.connect(t.mqttUrl, userId, deviceId, await t.token(userId))
    this.all.push(d)
    return d
  }

  /** Closes every device connected, one after the other; a failed close is passed over. */
  async closeAll(): Promise<void> {
    for (const d of this.all) await d.close().catch(() => {})
  }
}

/**
 * An MLS member for device `d` (identity `userId/deviceId`), with one fresh KeyPackage uploaded
 * (mls.keypackages.upload) for others to claim. Rejects with the server's error if refused.
 */
export async function uploadedMember(d: Device): Promise<MlsMember> {
  const identity = `${d.userId}/${d.deviceId}`
  const kp = await newKeyPackage(identity)
  await d.request('mls.keypackages.upload', { keyPackages: [kp.base64] })
  return { identity, kp }
}
