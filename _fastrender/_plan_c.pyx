# cython: language_level=3, embedsignature=True
"""The compiled renderer: the fast twin of ``_plan_py``.

A plan keeps its literal pieces as UTF-8 bytes and its slots as C arrays of
borrowed keys (owned by the plan's tuples).  Rendering writes piece, value,
piece, ... into one buffer (8 KiB on the stack, the heap past that),
percent-encodes only the bytes that need it, and creates the result ``str``
once.  ``str`` and ``int`` values are handled here; every other value, the
modifiers and the random token go through ``_values``, the code the twin
uses too, so the rules about *what text* a value becomes are written once.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_CheckExact
from cpython.list cimport PyList_CheckExact, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8String, PyUnicode_CheckExact, PyUnicode_DecodeUTF8
from cpython.float cimport PyFloat_CheckExact
from libc.string cimport memcpy

from ._errors import TemplateError
from ._parse import parse
from ._values import apply_modifiers, float_text, random_text, value_text

__all__ = ("Plan", "TemplateError", "compile_template")


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL


DEF STACK_SIZE = 8192

# Writer: a growable byte buffer that starts on the caller's stack.
ctypedef struct Writer:
    char* buf
    Py_ssize_t pos
    Py_ssize_t cap
    bint on_heap
    char stack[STACK_SIZE]


cdef unsigned char SAFE[256]      # RFC 3986 unreserved: copied as is
cdef unsigned char RAW_SAFE[256]  # |raw: everything but bytes never valid in a URL
cdef const char* HEX = b"0123456789ABCDEF"


cdef void _init_tables() noexcept:
    cdef int b
    cdef bytes unreserved = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    cdef bytes never_raw = b'"<>\\^`{|}'
    for b in range(256):
        SAFE[b] = 0
        # Must match _plan_py._NEVER_RAW: controls, space, DEL, non-ASCII and the
        # listed delimiters stay encoded under |raw.
        RAW_SAFE[b] = 1 if 0x20 < b < 0x7F else 0
    for b in unreserved:
        SAFE[b] = 1
    for b in never_raw:
        RAW_SAFE[b] = 0


_init_tables()


cdef inline void _writer_init(Writer* w) noexcept:
    w.buf = w.stack
    w.pos = 0
    w.cap = STACK_SIZE
    w.on_heap = False


cdef inline void _writer_release(Writer* w) noexcept:
    if w.on_heap:
        PyMem_Free(w.buf)
        w.buf = w.stack
        w.on_heap = False
        w.cap = STACK_SIZE


cdef int _grow(Writer* w, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = w.cap * 2
    cdef char* buf
    while cap < need:
        cap *= 2
    if w.on_heap:
        buf = <char*>PyMem_Realloc(w.buf, cap)
        if buf == NULL:
            raise MemoryError()
    else:
        buf = <char*>PyMem_Malloc(cap)
        if buf == NULL:
            raise MemoryError()
        memcpy(buf, w.buf, w.pos)
        w.on_heap = True
    w.buf = buf
    w.cap = cap
    return 0


cdef inline int _reserve(Writer* w, Py_ssize_t extra) except -1:
    if w.pos + extra > w.cap:
        _grow(w, w.pos + extra)
    return 0


cdef inline int _write(Writer* w, const char* data, Py_ssize_t n) except -1:
    if w.pos + n > w.cap:
        _grow(w, w.pos + n)
    memcpy(w.buf + w.pos, data, n)
    w.pos += n
    return 0


cdef int _write_quoted(Writer* w, const unsigned char* data, Py_ssize_t n,
                       const unsigned char* safe) except -1:
    """Copy the leading run that needs no escaping, encode the rest as %XX."""
    cdef Py_ssize_t i = 0
    cdef unsigned char c
    cdef char* out
    while i < n and safe[data[i]]:
        i += 1
    if i == n:
        return _write(w, <const char*>data, n)
    _reserve(w, i + (n - i) * 3)
    out = w.buf + w.pos
    memcpy(out, data, i)
    out += i
    while i < n:
        c = data[i]
        if safe[c]:
            out[0] = <char>c
            out += 1
        else:
            out[0] = b'%'
            out[1] = HEX[c >> 4]
            out[2] = HEX[c & 15]
            out += 3
        i += 1
    w.pos = out - w.buf
    return 0


cdef int _write_text(Writer* w, str text, bint raw) except -1:
    cdef bytes encoded
    cdef const unsigned char* safe = &SAFE[0]
    if raw:
        safe = &RAW_SAFE[0]
    if PyUnicode_IS_ASCII(text):
        return _write_quoted(w, <const unsigned char*>PyUnicode_DATA(text),
                             PyUnicode_GET_LENGTH(text), safe)
    # Non-ASCII: UTF-8 first.  A lone surrogate raises UnicodeEncodeError (a
    # ValueError), exactly as str.encode does in the twin: never garbage bytes.
    encoded = PyUnicode_AsUTF8String(text)
    return _write_quoted(w, <const unsigned char*>PyBytes_AS_STRING(encoded),
                         PyBytes_GET_SIZE(encoded), safe)


cdef int _write_int(Writer* w, object value) except -1:
    cdef int overflow = 0
    cdef long long n = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef unsigned long long u
    cdef char digits[24]
    cdef int i = 24
    if overflow:
        return _write_text(w, int.__repr__(value), False)
    u = <unsigned long long>(-n) if n < 0 else <unsigned long long>n
    while True:
        i -= 1
        digits[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if n < 0:
        i -= 1
        digits[i] = b'-'
    return _write(w, digits + i, 24 - i)


cdef class Plan:
    """A compiled template: literal pieces around resolved slots."""

    cdef readonly str template
    cdef readonly tuple tokens
    cdef tuple _slots        # _parse.Slot, for the slow path
    cdef tuple _keys         # owns the key strings _key_ptr borrows
    cdef tuple _piece_bytes  # owns the UTF-8 pieces _piece_ptr borrows
    cdef Py_ssize_t _n
    cdef bint _ascii
    cdef PyObject** _key_ptr
    cdef const char** _piece_ptr
    cdef Py_ssize_t* _piece_len
    cdef unsigned char* _simple  # 1: plain slot, no modifiers, raw or random

    def __cinit__(self):
        self._key_ptr = NULL
        self._piece_ptr = NULL
        self._piece_len = NULL
        self._simple = NULL

    def __init__(self, str template, tuple pieces, tuple slots):
        cdef Py_ssize_t i
        cdef bytes piece
        self.template = template
        self._slots = slots
        self._n = len(slots)
        self._keys = tuple([slot.key for slot in slots])
        self.tokens = self._keys
        self._piece_bytes = tuple([p.encode("utf-8") for p in pieces])
        self._ascii = all([p.isascii() for p in pieces])
        self._key_ptr = <PyObject**>PyMem_Malloc((self._n + 1) * sizeof(PyObject*))
        self._piece_ptr = <const char**>PyMem_Malloc((self._n + 1) * sizeof(char*))
        self._piece_len = <Py_ssize_t*>PyMem_Malloc((self._n + 1) * sizeof(Py_ssize_t))
        self._simple = <unsigned char*>PyMem_Malloc(self._n + 1)
        if not (self._key_ptr and self._piece_ptr and self._piece_len and self._simple):
            raise MemoryError()
        for i in range(self._n + 1):
            piece = self._piece_bytes[i]
            self._piece_ptr[i] = PyBytes_AS_STRING(piece)
            self._piece_len[i] = PyBytes_GET_SIZE(piece)
        for i in range(self._n):
            slot = slots[i]
            self._key_ptr[i] = <PyObject*>self._keys[i]
            self._simple[i] = not (slot.modifiers or slot.raw or slot.is_random)

    def __dealloc__(self):
        PyMem_Free(self._key_ptr)
        PyMem_Free(self._piece_ptr)
        PyMem_Free(self._piece_len)
        PyMem_Free(self._simple)

    def __repr__(self):
        return f"<Plan {self.template!r}>"

    def __reduce__(self):
        return (compile_template, (self.template,))

    cdef object _render(self, object values, Writer* w):
        cdef Py_ssize_t i
        cdef PyObject* found
        cdef object value
        cdef object key
        cdef object get = None
        cdef bint is_dict = PyDict_CheckExact(values)
        if not is_dict:
            get = _getter(values)
        w.pos = 0
        _write(w, self._piece_ptr[0], self._piece_len[0])
        for i in range(self._n):
            key = <object>self._key_ptr[i]
            if is_dict:
                found = PyDict_GetItemWithError(values, key)
                value = None if found == NULL else <object>found
            else:
                value = get(key)
            if not self._simple[i]:
                _write_slow(w, self._slots[i], value)
            elif value is None:
                pass
            elif PyUnicode_CheckExact(value):
                _write_text(w, <str>value, False)
            elif PyLong_CheckExact(value):
                _write_int(w, value)
            elif PyFloat_CheckExact(value):
                _write_text(w, float_text(key, value), False)
            else:
                value = value_text(key, value)
                if value is not None:
                    _write_text(w, <str>value, False)
            _write(w, self._piece_ptr[i + 1], self._piece_len[i + 1])
        return self._result(w)

    cdef inline object _result(self, Writer* w):
        cdef object text
        if self._ascii:
            text = PyUnicode_New(w.pos, 127)
            memcpy(PyUnicode_DATA(text), w.buf, w.pos)
            return text
        return PyUnicode_DecodeUTF8(w.buf, w.pos, "strict")

    def render(self, values):
        """render(values) -> str: the URL for one set of values."""
        cdef Writer w
        if self._n == 0:
            return self.template
        _writer_init(&w)
        try:
            return self._render(values, &w)
        finally:
            _writer_release(&w)

    def render_many(self, many):
        """render_many(many) -> list[str]: the URLs for a batch of value sets, in order."""
        cdef Writer w
        cdef list out
        cdef Py_ssize_t i, count
        if not PyList_CheckExact(many):
            many = list(many)
        count = PyList_GET_SIZE(many)
        if self._n == 0:
            return [self.template] * count
        out = []
        _writer_init(&w)
        try:
            for i in range(count):
                out.append(self._render(<object>PyList_GET_ITEM(many, i), &w))
        finally:
            _writer_release(&w)
        return out


cdef object _getter(object values):
    try:
        return values.get
    except AttributeError:
        raise TypeError(
            f"values must be a mapping of token names, not {type(values).__name__}"
        ) from None


cdef int _write_slow(Writer* w, object slot, object value) except -1:
    text = value_text(slot.key, value)
    if text is None:
        if not slot.is_random:
            return 0
        text = random_text()
    if slot.modifiers:
        text = apply_modifiers(text, slot.modifiers)
    return _write_text(w, text, slot.raw)


def compile_template(template, *, dialect="clickflare", unknown="error"):
    """compile_template(template, *, dialect="clickflare", unknown="error") -> Plan"""
    parsed = parse(template, dialect, unknown)
    # A str subclass is stored as plain str, so both twins hand back the same type.
    return Plan(str.__str__(template), parsed.pieces, parsed.slots)
