import { type Bus, type JournalRecord, type Kv, REQUEST_JOURNAL_MAX_AGE_MS, type Subjects, decode, journalRecord } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * The request journal: every request a scheduler accepted, stored before it is
 * acknowledged and removed once its final event is sent, so that a scheduler that
 * dies loses nothing — the one that replaces it (restarted by the supervisor or by
 * Kubernetes) resumes its group's records from step 0. Results are bitwise the same:
 * a request's noise comes from its seed.
 *
 * On NATS it is a JetStream KV bucket (`<p>-requests`, file-backed like the plans), one
 * key per request under its serving group. Why a KV and not a work-queue consumer with
 * acks: a group has one scheduler at a time, so nothing needs to be balanced or
 * redelivered; the restarted scheduler reads its group's keys at once instead of
 * waiting out an ack timeout, and a gateway can ask whether a silent request is still
 * held (`has`) with one lookup.
 */
export interface RequestJournal {
  /** Stores an accepted request; UNAVAILABLE when the store cannot be reached. */
  store(rec: JournalRecord): Promise<void>;
  /** Forgets a request whose final event was sent. */
  remove(requestId: string): Promise<void>;
  /** Every stored record of the group, oldest first; a record that does not fit the contract is reported and deleted. */
  list(): Promise<JournalRecord[]>;
}

export function createRequestJournal(bus: Bus, subjects: Subjects, log: (msg: string) => void = () => undefined): RequestJournal {
  let kv: Promise<Kv> | undefined;
  const bucket = () => (kv ??= bus.kv(subjects.requestsBucket, { maxAgeMs: REQUEST_JOURNAL_MAX_AGE_MS }).catch((e) => {
    kv = undefined;
    throw e;
  }));
  return {
    async store(rec) {
      try {
        await (await bucket()).put(subjects.journalKey(rec.submit.requestId), rec as unknown as Parameters<Kv["put"]>[1]);
      } catch (e) {
        const se = SwitchyardError.from(e, Code.Unavailable);
        throw new SwitchyardError(`could not store the request in the request journal: ${se.rawMessage}; retry`, Code.Unavailable, { cause: e });
      }
    },
    async remove(requestId) {
      await (await bucket()).delete(subjects.journalKey(requestId));
    },
    async list() {
      const b = await bucket();
      const out: JournalRecord[] = [];
      for (const key of await b.keys(subjects.journalKeys)) {
        const e = await b.get(key);
        if (!e) continue;
        try {
          out.push(decode(journalRecord, e.value, `journal record ${key}`));
        } catch (err) {
          log(`dropping journal record ${key}: ${SwitchyardError.from(err).message}`);
          await b.delete(key);
        }
      }
      return out.sort((a, b2) => a.acceptedAtMs - b2.acceptedAtMs);
    },
  };
}
