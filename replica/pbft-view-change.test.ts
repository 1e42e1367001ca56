/**
 * The PBFT view change's decision rule and log (replica/pbft-view-change.ts), against the rules
 * of Castro and Liskov, TOCS 2002 §4 (the BFT-PR view change): checkpoint selection, A1/A2 for a
 * batch, B for the null request, and VIEW-CHANGE-ACKs at the new primary.
 */
import { describe, expect, it } from 'vitest';
import { createCrypto } from './crypto.js';
import { KeyRing } from './keys.js';
import { makeRequest, noopRequest, requestDigest, type ClientRequest } from './messages.js';
import { decideNewView, LaggardAnswers, ViewChangeLog, type DecideContext } from './pbft-view-change.js';
import { MSG_NEW_VIEW, MSG_VIEW_CHANGE, MSG_VIEW_CHANGE_ACK, type NewView, type PreparedCert, type ViewChange } from './pbft-wire.js';
import { quorums } from './types.js';

const crypto = createCrypto('sim');
const ring = new KeyRing(crypto, 'pbft-vc-test', 4, 1);
const genesis = Buffer.alloc(32, 0);
const ctx: DecideContext = { crypto, quorums: quorums(4), genesis };

function request(clientId: number): ClientRequest {
  return makeRequest(ring.clientSigner(0), 0, clientId, 0, [{ key: clientId, value: Buffer.alloc(8, clientId) }]);
}
const a = request(1);
const b = request(2);
const da = requestDigest(crypto, a);
const db = requestDigest(crypto, b);

/** A VIEW-CHANGE for view 2 from `replica` with stable checkpoint 0 and these P and Q entries (k=1). */
function vc(replica: number, p?: { view: number; d: Buffer }, q: { view: number; d: Buffer }[] = p ? [p] : []): ViewChange {
  const prepared: PreparedCert[] = p ? [{ k: 1, view: p.view, originView: p.view, digest: p.d }] : [];
  return {
    type: MSG_VIEW_CHANGE,
    replica,
    view: 2,
    checkpoint: { k: 0, stateDigest: genesis, senders: [] },
    taken: [],
    prepared,
    prePrepared: q.map((x) => ({ k: 1, view: x.view, originView: x.view, digest: x.d })),
  };
}

describe('PBFT new-view decision (TOCS 2002 §4)', () => {
  it('keeps a batch prepared at nf replicas against one replica claiming another batch in the same view', () => {
    const plan = decideNewView(ctx, 2, [vc(0, { view: 0, d: da }), vc(1, { view: 0, d: da }), vc(2, { view: 0, d: da }), vc(3, { view: 0, d: db })]);
    expect(plan?.entries.map((e) => [e.k, e.digest.equals(da), e.noop])).toEqual([[1, true, false]]);
    // Reference: TOCS 2002 §4, A1: 2f+1 view-change messages do not contradict the chosen request.
  });

  it('a claim in a higher view that no f+1 replicas pre-prepared (A2) does not win', () => {
    // Replica 3 says b prepared in view 1; only it pre-prepared b there.
    const vcs = [vc(0, { view: 0, d: da }), vc(1, { view: 0, d: da }), vc(2, { view: 0, d: da }), vc(3, { view: 1, d: db })];
    const plan = decideNewView(ctx, 2, vcs);
    expect(plan?.entries[0]?.digest.equals(da)).toBe(true);
    // With a second replica that pre-prepared b in view 1 (f+1 = 2), b wins: it may have committed in view 1.
    const backed = [vc(0, undefined, [{ view: 1, d: db }]), vc(1, { view: 0, d: da }), vc(2, { view: 0, d: da }), vc(3, { view: 1, d: db })];
    expect(decideNewView(ctx, 2, backed)?.entries[0]?.digest.equals(db)).toBe(true);
    // Reference: TOCS 2002 §4, A2: f+1 view-change messages have the request pre-prepared in a view at least as high.
  });

  it('chooses the null request when nf say nothing prepared (B), and waits when neither rule decides', () => {
    const plan = decideNewView(ctx, 2, [vc(0), vc(1), vc(2), vc(3, { view: 0, d: db })]);
    expect(plan?.entries.map((e) => [e.k, e.noop, e.originView])).toEqual([[1, true, 2]]);
    expect(plan?.entries[0]?.digest.equals(requestDigest(crypto, noopRequest(1)))).toBe(true);
    // nf = 3 VIEW-CHANGEs: one with a, one without, one Byzantine with b: wait for more.
    expect(decideNewView(ctx, 2, [vc(0, { view: 0, d: da }), vc(1), vc(3, { view: 0, d: db })])).toBeUndefined();
    // Reference: TOCS 2002 §4, B: 2f+1 view-change messages with no prepared request for n select null; otherwise the primary waits.
  });

  it('takes a checkpoint only when f+1 name it, and the new primary only a batch it holds (A3)', () => {
    const digest = Buffer.alloc(32, 5);
    const at10 = (replica: number, taken: boolean): ViewChange => ({
      ...vc(replica),
      ...(taken ? { taken: [{ k: 10, stateDigest: digest }] } : { checkpoint: { k: 10, stateDigest: digest, senders: [0, 1, 2] } }),
    });
    // One replica alone (a Byzantine one, say) claiming checkpoint 10 does not move min-s.
    expect(decideNewView(ctx, 2, [at10(0, false), vc(1), vc(2), vc(3)])?.minS).toBe(0);
    // Stable at one replica and taken at another: f+1 = 2 name it.
    const plan = decideNewView(ctx, 2, [at10(0, false), at10(1, true), vc(2), vc(3)]);
    expect(plan?.minS).toBe(10);
    expect(plan?.checkpoint.stateDigest.equals(digest)).toBe(true);
    const withA = [vc(0, { view: 0, d: da }), vc(1, { view: 0, d: da }), vc(2, { view: 0, d: da })];
    expect(decideNewView({ ...ctx, requestFor: () => undefined }, 2, withA)).toBeUndefined();
    expect(decideNewView({ ...ctx, requestFor: () => a }, 2, withA)?.entries[0]?.request).toBe(a);
    // Reference: TOCS 2002 §4, the checkpoint is one f+1 view-change messages contain; A3: the primary has the request.
  });
});

describe('PBFT view-change log', () => {
  it("the new primary uses another replica's VIEW-CHANGE only once nf-2 third replicas acked the same one", () => {
    const log = new ViewChangeLog(crypto, 4, 2); // the primary of view 2
    const own = vc(2);
    const other = vc(1, { view: 0, d: da });
    log.record(own);
    log.record(other);
    expect(log.vouched(2, 3).map((v) => v.replica)).toEqual([2]);
    // An ACK from the sender itself, or of another message, does not count.
    log.recordAck({ type: MSG_VIEW_CHANGE_ACK, replica: 1, view: 2, of: 1, digest: log.digestOf(other) });
    log.recordAck({ type: MSG_VIEW_CHANGE_ACK, replica: 3, view: 2, of: 1, digest: log.digestOf(vc(1, { view: 0, d: db })) });
    expect(log.vouched(2, 3).map((v) => v.replica)).toEqual([2]);
    log.recordAck({ type: MSG_VIEW_CHANGE_ACK, replica: 0, view: 2, of: 1, digest: log.digestOf(other) });
    expect(log.vouched(2, 3).map((v) => v.replica)).toEqual([1, 2]);
    // Reference: TOCS 2002 §4, the primary adds a view-change message to S when it holds 2f-1 view-change-acks for it.
  });

  it('a backup checks V against its own copies: a different one is forged, a missing one is asked for', () => {
    const log = new ViewChangeLog(crypto, 4, 3);
    log.record(vc(0, { view: 0, d: da }));
    const nv = (v: ViewChange[]): NewView => ({ type: MSG_NEW_VIEW, replica: 2, view: 2, viewChanges: v, prePrepares: [] });
    expect(log.checkV(nv([vc(0, { view: 0, d: db })]))).toBe('forged');
    expect(log.checkV(nv([vc(0, { view: 0, d: da }), vc(1), vc(2)]))).toEqual([1, 2]);
    log.record(vc(1));
    log.record(vc(2));
    expect(log.checkV(nv([vc(0, { view: 0, d: da }), vc(1), vc(2)]))).toBe('ok');
    // Reference: TOCS 2002 §4, backups check the new-view message against the view-change messages they hold; MACs are not transferable.
  });
});

describe('PBFT answers to replicas asking for the view this one runs', () => {
  it('answers a laggard at doubling intervals, and never a peer seen running the view', () => {
    // Two replicas that both run the view answer each other's VIEW-CHANGEs: without the
    // doubling that exchange never ends (the n = 32 overload stall, infra/sim/pbft-overload.test.ts).
    const t = 300;
    const answers = new LaggardAnswers(t / 2);
    const times: number[] = [];
    for (let now = 0; now <= 10_000; now += 10) if (answers.answerNow(1, now)) times.push(now);
    // T/2 after the first answer, then T, 2T, ... (as PBFT doubles its NEW-VIEW wait, OSDI'99 §4.4).
    expect(times).toEqual([0, 150, 450, 1050, 2250, 4650, 9450]);
    answers.noteRunning(2);
    expect(answers.answerNow(2, 0)).toBe(false);
    answers.reset();
    expect(answers.answerNow(1, 10_000)).toBe(true);
    expect(answers.answerNow(2, 10_000)).toBe(true);
    expect(answers.answerNow(2, 10_010)).toBe(false);
  });
});
