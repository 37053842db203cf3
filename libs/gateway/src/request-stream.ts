import { REQUEST_JOURNAL_MAX_AGE_MS, type Bus, type DoneEvent, type ProgressEvent, type SubmitMessage, type SubmitReply, type Subjects, base64ToF32, channels, publish, request, subscribe } from "@switchyard/contract";
import { Code, SwitchyardError } from "@switchyard/errors";

export interface RequestHandlers {
  accepted?(reply: SubmitReply): void;
  progress?(e: ProgressEvent): void;
  done(images: Float32Array[], e: DoneEvent): void;
  error(e: SwitchyardError): void;
}

export interface RequestHandle {
  /** Cancels the request at the scheduler (before its next tick); no more callbacks. */
  cancel(): void;
}

/**
 * How long a submit that nobody answers (no scheduler up — one is restarting — or NATS
 * away) is retried before the client hears UNAVAILABLE; never past the request's deadline.
 */
export const DEFAULT_SUBMIT_RETRY_MS = 30_000;
/**
 * A request silent this long is asked after (`resend`): its scheduler answers with a
 * status event or repeats its final events. Silent twice as long, the request journal
 * is asked: a request still stored waits for the scheduler that will resume it; one
 * neither held nor stored was lost and fails UNAVAILABLE, so the client retries.
 */
export const DEFAULT_SILENCE_MS = 5000;

export interface RequestWatch {
  readonly submitRetryMs?: number;
  readonly silenceMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Submits a request to a scheduler over the bus and follows its events until exactly
 * one of done/error. It subscribes before submitting so that no event is missed,
 * retries a submit nobody answered, and keeps the stream through a scheduler's restart
 * or NATS's (see DEFAULT_SILENCE_MS). A request resumed by another scheduler starts
 * again from step 0: progress is passed on only past the furthest step already seen.
 */
export function startRequest(bus: Bus, subjects: Subjects, model: string, submit: SubmitMessage, submitTimeoutMs: number, h: RequestHandlers, watch: RequestWatch = {}): RequestHandle {
  const id = submit.requestId;
  const silenceMs = watch.silenceMs ?? DEFAULT_SILENCE_MS;
  let finished = false;
  let accepted = false;
  let heardAt = Date.now();
  let furthestStep = 0;
  const images: Float32Array[] = new Array(submit.params.count);
  const finish = () => {
    finished = true;
    clearInterval(watchdog);
    sub.unsubscribe();
  };
  const fail = (e: SwitchyardError) => {
    if (finished) return;
    finish();
    h.error(e);
  };
  const ch = channels(subjects);
  // An event that does not fit the contract fails the request (INTERNAL: the scheduler is broken), rather than hanging it.
  const invalid = (e: SwitchyardError) => fail(new SwitchyardError(`the scheduler sent an invalid event: ${e.rawMessage}`, Code.Internal, { cause: e }));
  const sub = subscribe(bus, ch.events(id), (e) => {
    if (finished) return;
    heardAt = Date.now();
    switch (e.type) {
      case "progress":
        if (e.step <= furthestStep) break;
        furthestStep = e.step;
        h.progress?.(e);
        break;
      case "image":
        images[e.index] = base64ToF32(e.data);
        break;
      case "done":
        finish();
        h.done(images, e);
        break;
      case "error":
        fail(new SwitchyardError(e.message, e.code as Code));
        break;
      case "status":
        break;
    }
  }, invalid);

  let probing = false;
  const watchdog = setInterval(() => {
    if (finished || !accepted || probing) return;
    const silent = Date.now() - heardAt;
    if (silent < silenceMs) return;
    try {
      publish(bus, ch.resend, { requestId: id });
    } catch {
      // NATS away: asked again on the next round
    }
    if (silent < 2 * silenceMs) return;
    probing = true;
    void (async () => {
      try {
        const journal = await bus.kv(subjects.requestsBucket, { maxAgeMs: REQUEST_JOURNAL_MAX_AGE_MS });
        const held = await journal.keys(subjects.journalKey(id, "*"));
        if (finished) return;
        if (held.length > 0) heardAt = Date.now(); // stored: the scheduler that resumes it will speak
        else fail(new SwitchyardError(`request ${id} was lost: no scheduler holds it and the request journal does not have it; retry it`, Code.Unavailable));
      } catch {
        // the journal cannot be read now (NATS away): ask again later
      } finally {
        probing = false;
      }
    })();
  }, Math.max(50, silenceMs / 2));
  watchdog.unref?.();

  void (async () => {
    const retryUntil = Math.min(Date.now() + (watch.submitRetryMs ?? DEFAULT_SUBMIT_RETRY_MS), submit.deadlineMs ?? Infinity);
    // The trace context goes as NATS headers (W3C traceparent), the way NATS carries it.
    const { trace, ...body } = submit;
    const accept = (reply: SubmitReply) => {
      accepted = true;
      heardAt = Date.now();
      h.accepted?.(reply);
    };
    for (let attempt = 0; ; attempt++) {
      try {
        await bus.flush();
        const reply = await request(bus, ch.intake(model), body, { timeoutMs: submitTimeoutMs, ...(trace ? { headers: trace } : {}) });
        if (!finished) accept(reply);
        return;
      } catch (err) {
        if (finished) return;
        const se = SwitchyardError.from(err);
        // An earlier attempt that timed out had been stored after all: it is ours.
        if (attempt > 0 && se.code === Code.AlreadyExists) return accept({ accepted: true, queuePosition: 0 });
        const backoff = Math.min(250 * 2 ** attempt, 2000);
        const transient = se.code === Code.Unavailable || se.code === Code.DeadlineExceeded;
        if (transient && Date.now() + backoff < retryUntil) {
          await sleep(backoff);
          continue;
        }
        // no scheduler answering is a transient condition for the client
        return fail(transient ? new SwitchyardError(`no scheduler accepted the request: ${se.rawMessage}`, Code.Unavailable, { cause: err }) : se);
      }
    }
  })();
  return {
    cancel() {
      if (finished) return;
      finish();
      publish(bus, ch.cancel, { requestId: id });
    },
  };
}
