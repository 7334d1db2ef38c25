"""Deepgram live transcription, simulated: an energy VAD over the audio actually received, with
the words taken from the phone line that is speaking.

Timing follows the audio (stream time = audio received / byte rate), like the real service:
``SpeechStarted`` at the first voiced frame, an interim ``Results`` each time another word has
been fully heard, a final (``is_final`` + ``speech_final``) once ``endpointing`` ms of silence
follow the speech, and ``UtteranceEnd`` ``utterance_end_ms`` after the last finalized word.
The words come from the shared phone network: the persona line the phone of call ``tag``
started speaking, with word times from its synthesis.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulators.common.audio import frame_levels, is_silence, pcm16_frame_levels
from simulators.common.speech import SpokenWord
from simulators.network import PhoneNetwork

FRAME_S = 0.02
_MODELS: dict[str, tuple[str, str, str]] = {
    "nova-3": ("general-nova-3", "2025-07-31.0", "nova-3"),
    "nova-2": ("2-general-nova", "2024-01-18.26916", "nova-2"),
    "nova-2-phonecall": ("2-phonecall-nova", "2024-01-18.26916", "nova-2"),
}
_SCRIPTED_WORD_S = 0.35  # word pace assumed for scripted transcripts (audio of unknown words)
_NO_ENDPOINT_FINAL_MS = 500  # with endpointing=false, finals still come after a pause


class OptionsError(ValueError):
    pass


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() in ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class ListenOptions:
    model: str = "base"
    encoding: str = "mulaw"
    sample_rate: int = 8000
    channels: int = 1
    interim_results: bool = False
    endpointing_ms: int | None = 10  # None: endpointing=false
    utterance_end_ms: int | None = None
    vad_events: bool = False
    punctuate: bool = False
    smart_format: bool = False
    tags: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, query: Any) -> ListenOptions:
        encoding = query.get("encoding")
        if encoding not in ("mulaw", "linear16"):
            raise OptionsError(
                "the simulator decodes encoding=mulaw or encoding=linear16 "
                f"(got {encoding!r}); set sample_rate too"
            )
        try:
            rate = int(query.get("sample_rate", "8000"))
            channels = int(query.get("channels", "1"))
        except ValueError as exc:
            raise OptionsError("sample_rate and channels must be integers") from exc
        if channels != 1:
            raise OptionsError("the simulator transcribes mono audio only (channels=1)")
        ep = query.get("endpointing")
        endpointing: int | None
        if ep is None:
            endpointing = 10
        elif ep.lower() == "false":
            endpointing = None
        elif ep.lower() == "true":
            endpointing = 10
        else:
            try:
                endpointing = int(ep)
            except ValueError as exc:
                raise OptionsError("endpointing must be false or a number of ms") from exc
        ue = query.get("utterance_end_ms")
        try:
            utterance_end = int(ue) if ue is not None else None
        except ValueError as exc:
            raise OptionsError("utterance_end_ms must be a number") from exc
        return cls(
            model=query.get("model", "base"),
            encoding=encoding,
            sample_rate=rate,
            channels=channels,
            interim_results=_bool(query.get("interim_results"), False),
            endpointing_ms=endpointing,
            utterance_end_ms=utterance_end,
            vad_events=_bool(query.get("vad_events"), False),
            punctuate=_bool(query.get("punctuate"), False),
            smart_format=_bool(query.get("smart_format"), False),
            tags=tuple(query.getall("tag", ())) if hasattr(query, "getall") else (),
        )

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * (1 if self.encoding == "mulaw" else 2)

    @property
    def frame_bytes(self) -> int:
        return int(self.bytes_per_second * FRAME_S)


@dataclass(slots=True)
class _Active:
    """The utterance being transcribed and how far it has got."""

    words: tuple[SpokenWord, ...]
    onset: float  # stream time of its first voiced frame
    duration: float
    scripted: bool
    finalized: int = 0
    reported: int = 0  # words sent so far (interim or final)
    utterance_key: int = 0


class Transcriber:
    def __init__(
        self, opts: ListenOptions, network: PhoneNetwork, request_id: str, threshold: float
    ) -> None:
        self.opts = opts
        self.network = network
        self.request_id = request_id
        self.threshold = threshold
        name, version, arch = _MODELS.get(opts.model, (opts.model, "2025-01-01.0", opts.model))
        self.model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"deepgram-sim/{opts.model}"))
        self.model_info = {"name": name, "version": version, "arch": arch}
        self._metadata = {
            "request_id": request_id,
            "model_info": self.model_info,
            "model_uuid": self.model_uuid,
        }
        self.bytes_received = 0
        self._sha = hashlib.sha256()
        self._carry = b""
        self.frames = 0
        self.in_speech = False
        self._silence_frames = 0
        self._speech_end = 0.0
        self._cursor = 0.0
        self._utt: _Active | None = None
        self._used: set[int] = set()
        self._last_interim = 0
        self._last_word_end: float | None = None
        self._utterance_end_sent = True
        self.created = datetime.now(UTC)
        self.words_out = 0  # words transcribed on this connection (interim or final)
        self._batch_end = 0.0  # loop time the audio being fed ends (for mid-line binds)
        self._batch_left = 0

    @property
    def stream_time(self) -> float:
        return self.frames * FRAME_S

    # -- input ---------------------------------------------------------------------------------
    def feed(self, audio: bytes) -> list[dict[str, Any]]:
        self.bytes_received += len(audio)
        self._sha.update(audio)
        data = self._carry + audio if self._carry else audio
        fb = self.opts.frame_bytes
        n = len(data) // fb
        self._carry = data[n * fb :]
        if n == 0:
            return []
        whole = data[: n * fb]
        out: list[dict[str, Any]] = []
        # The last frame is (about) now; earlier ones of a batch (a reconnect's replay) older.
        self._batch_end = asyncio.get_running_loop().time()
        self._batch_left = n
        if self.opts.encoding == "mulaw" and is_silence(whole):
            # Fast path: Twilio sends 0xFF frames whenever nobody speaks.
            for _ in range(n):
                self._frame(False, out)
            return out
        if self.opts.encoding == "mulaw":
            levels = frame_levels(whole, fb)
        else:
            levels = pcm16_frame_levels(whole, fb // 2)
        for level in levels.tolist():
            self._frame(level > self.threshold, out)
        return out

    def _frame(self, voiced: bool, out: list[dict[str, Any]]) -> None:
        t_start = self.stream_time
        self.frames += 1
        self._batch_left -= 1
        t_end = self.stream_time
        if voiced:
            if not self.in_speech:
                self.in_speech = True
                if self.opts.vad_events:
                    out.append(
                        {"type": "SpeechStarted", "channel": [0], "timestamp": round(t_start, 3)}
                    )
                self._bind(t_start)
            self._silence_frames = 0
            self._speech_end = t_end
            self._interim(t_end, out)
            return
        if self.in_speech:
            self._silence_frames += 1
            silence_ms = self._silence_frames * FRAME_S * 1000
            ep = self.opts.endpointing_ms
            if ep is not None and silence_ms >= ep:
                out.append(self._final(t_end, speech_final=True))
                self.in_speech = False
            elif ep is None and silence_ms >= _NO_ENDPOINT_FINAL_MS:
                out.append(self._final(t_end, speech_final=False))
                self.in_speech = False
        ue = self.opts.utterance_end_ms
        if (
            ue is not None
            and self.opts.interim_results
            and not self._utterance_end_sent
            and self._last_word_end is not None
            and not self.in_speech
            and t_end - self._last_word_end >= ue / 1000
        ):
            self._utterance_end_sent = True
            out.append(
                {
                    "type": "UtteranceEnd",
                    "channel": [0, 1],
                    "last_word_end": round(self._last_word_end, 3),
                }
            )

    def _bind(self, onset: float) -> None:
        """Find the words for the speech that just started."""
        u = self._utt
        if u is not None and onset - u.onset <= u.duration + 0.3:
            return  # a pause inside the same line (or its tail)
        tag = self.opts.tags[0] if self.opts.tags else ""
        now = asyncio.get_running_loop().time()
        utt = None
        for t in self.opts.tags:
            utt = self.network.utterance_for(t, now, self._used)
            if utt is not None:
                break
        if utt is not None:
            self._used.add(id(utt))
            words = utt.speech.words
            duration = utt.speech.duration_s
            if utt.connections:
                # Another connection was transcribing this line: this one (a reconnect) joins
                # mid-line and hears only the rest. Its first voiced frame is `pos` into the
                # line (the frames of a replayed backlog are older than the batch's last one);
                # words mostly spoken before that are not in its audio.
                frame_at = self._batch_end - max(0, self._batch_left) * FRAME_S - FRAME_S
                pos = max(0.0, frame_at - utt.started_at)
                words = tuple(
                    SpokenWord(w.word, w.punctuated, w.start - pos, w.end - pos)
                    for w in words
                    if (w.start + w.end) / 2 > pos
                )
                duration = max(0.0, duration - pos)
            utt.connections += 1
            self._utt = _Active(words, onset, duration, scripted=False, utterance_key=id(utt))
        else:
            text = self.network.next_scripted_transcript(tag) or ""
            words = tuple(
                SpokenWord(
                    w.lower().strip(".,!?;:"),
                    w,
                    i * _SCRIPTED_WORD_S,
                    (i + 0.85) * _SCRIPTED_WORD_S,
                )
                for i, w in enumerate(text.split())
            )
            self._utt = _Active(words, onset, 0.0, scripted=True)
        self._last_interim = 0

    # -- output ---------------------------------------------------------------------------------
    def _heard(self, t: float, final: bool) -> int:
        u = self._utt
        if u is None:
            return 0
        if u.scripted:
            if final:
                return len(u.words)
            return min(len(u.words) - 1, int((t - u.onset) / _SCRIPTED_WORD_S))
        rel = t - u.onset
        if final:
            # Every word that had started before the speech stopped.
            return sum(1 for w in u.words if w.start < rel + FRAME_S)
        return sum(1 for w in u.words if w.end <= rel + 0.005)

    def _interim(self, t: float, out: list[dict[str, Any]]) -> None:
        if not self.opts.interim_results or self._utt is None:
            return
        n = self._heard(t, final=False)
        if n > max(self._last_interim, self._utt.finalized):
            self._last_interim = n
            self._count(n)
            words = self._utt.words[self._utt.finalized : n]
            out.append(self._results(words, t, is_final=False, speech_final=False))

    def _final(self, t: float, speech_final: bool, from_finalize: bool = False) -> dict[str, Any]:
        u = self._utt
        words: tuple[SpokenWord, ...] = ()
        if u is not None:
            heard_until = self._speech_end if not from_finalize else t
            m = max(u.finalized, self._heard(heard_until, final=True))
            words = u.words[u.finalized : m]
            u.finalized = m
            self._last_interim = m
            self._count(m)
            if u.scripted and m == len(u.words):
                # Scripted words carry no real timing: spread them over the speech heard.
                span = max(FRAME_S, self._speech_end - u.onset)
                step = span / max(1, len(words))
                words = tuple(
                    SpokenWord(w.word, w.punctuated, i * step, (i + 0.85) * step)
                    for i, w in enumerate(words)
                )
        msg = self._results(words, t, True, speech_final, from_finalize)
        if words and u is not None:
            self._last_word_end = u.onset + words[-1].end
            self._utterance_end_sent = False
        self._cursor = t
        return msg

    def _count(self, upto: int) -> None:
        u = self._utt
        if u is not None and upto > u.reported:
            self.words_out += upto - u.reported
            u.reported = upto

    def _results(
        self,
        words: tuple[SpokenWord, ...],
        t: float,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        onset = self._utt.onset if self._utt else 0.0
        punct = self.opts.punctuate or self.opts.smart_format
        conf = 0.99 if is_final else 0.92
        word_objs = []
        for w in words:
            obj: dict[str, Any] = {
                "word": w.word,
                "start": round(onset + w.start, 3),
                "end": round(onset + w.end, 3),
                "confidence": conf,
            }
            if punct:
                obj["punctuated_word"] = w.punctuated
            word_objs.append(obj)
        transcript = " ".join(w.punctuated if punct else w.word for w in words)
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(max(0.0, t - self._cursor), 3),
            "start": round(self._cursor, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {
                "alternatives": [
                    {
                        "transcript": transcript,
                        "confidence": conf if words else 0.0,
                        "words": word_objs,
                    }
                ]
            },
            "metadata": self._metadata,
            "from_finalize": from_finalize,
        }

    # -- control messages ----------------------------------------------------------------------
    def finalize(self) -> list[dict[str, Any]]:
        """``Finalize``: flush what has been heard as a final result, now."""
        msg = self._final(self.stream_time, speech_final=False, from_finalize=True)
        return [msg]

    def close_stream(self) -> list[dict[str, Any]]:
        """``CloseStream``: final results for pending speech, then the ``Metadata`` summary."""
        out: list[dict[str, Any]] = []
        if self.in_speech or (self._utt and self._utt.finalized < len(self._utt.words)):
            if self.in_speech:
                self._speech_end = self.stream_time
            out.append(self._final(self.stream_time, speech_final=self.in_speech))
            self.in_speech = False
        out.append(self.metadata())
        return out

    def metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": self._sha.hexdigest(),
            "created": self.created.isoformat().replace("+00:00", "Z"),
            "duration": round(self.bytes_received / self.opts.bytes_per_second, 3),
            "channels": self.opts.channels,
            "models": [self.model_uuid],
            "model_info": {self.model_uuid: self.model_info},
        }
