/**
 * Zyzzyva's lying replicas (replica/byzantine.ts). Zyzzyva has no view change here (no
 * view-change messages to forge). Its votes are the signed SPEC-RESPONSEs a client gathers for
 * the fast path (n matching) or the commit certificate (nf matching), and the signed
 * LOCAL-COMMITs of the commit path (Zyzzyva §3.2, case 2). A conflicting one is genuinely
 * signed by the liar with the history, digest and result of an earlier response of its own.
 */
import type { AdversaryHooks, Liar } from './protocol.js';
import type { ReplicaDeps } from './types.js';
import { localCommitSignedBytes, MSG_LOCAL_COMMIT, MSG_SPEC_RESPONSE, specSignedBytes, type ZyzzyvaMessage } from './zyzzyva.js';

interface Said {
  readonly history: Buffer;
  readonly digest: Buffer;
  readonly result: Buffer;
}

class ZyzzyvaLiar implements Liar<ZyzzyvaMessage> {
  private readonly said: Said[] = [];
  constructor(private readonly deps: ReplicaDeps) {}
  observe(msg: ZyzzyvaMessage, incoming: boolean): void {
    if (incoming || msg.type !== MSG_SPEC_RESPONSE) return;
    this.said.push({ history: msg.history, digest: msg.digest, result: msg.result });
    if (this.said.length > 8) this.said.shift();
  }
  viewChangeView(): undefined {
    return undefined;
  }
  forgeViewChange(): undefined {
    return undefined;
  }
  staleViewChange(): undefined {
    return undefined;
  }
  conflictingVote(msg: ZyzzyvaMessage): ZyzzyvaMessage | undefined {
    if (msg.type !== MSG_SPEC_RESPONSE && msg.type !== MSG_LOCAL_COMMIT) return undefined;
    const other = [...this.said].reverse().find((s) => !s.history.equals(msg.history));
    if (!other) return undefined;
    if (msg.type === MSG_SPEC_RESPONSE) {
      const body = { ...msg, history: other.history, digest: other.digest, result: other.result };
      return { ...body, signature: this.deps.signer.sign(specSignedBytes(body)) };
    }
    const body = { ...msg, history: other.history, digest: other.digest };
    return { ...body, signature: this.deps.signer.sign(localCommitSignedBytes(body)) };
  }
}

export const zyzzyvaAdversaryHooks: AdversaryHooks<ZyzzyvaMessage> = {
  liar: (_id, _n, deps) => new ZyzzyvaLiar(deps),
};
