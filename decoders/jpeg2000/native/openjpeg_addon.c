/*
 * iipsrv_openjpeg: a small N-API addon over the system libopenjp2 (2.5). It decodes one region of
 * a JP2/J2K/JPX file at one resolution reduction and quality-layer count, off the event loop
 * (napi async work on the libuv pool), and returns interleaved 8- or 16-bit samples.
 *
 * decode(path, options) -> Promise<{ data: Buffer, width, height, channels, bits }>
 *   options: { format: 0 = J2K codestream | 1 = JP2/JPX, reduce, layers (0 = all),
 *              x0, y0, x1, y1 (reference-grid area; all 0 = the whole image),
 *              components (how many to output, 1..4), bits (8 | 16), ycc (1 = convert
 *              YCbCr to RGB), threads, bufferSize (file stream read buffer, bytes) }
 *
 * decodeBuffer(codestream: Buffer, options) -> the same, from a codestream in memory (a sparse
 *   codestream built in JS: decoders/jpeg2000/sparse.ts). The bytes are copied on the main
 *   thread, so the caller may reuse its buffer at once; the copy is freed with the job.
 *
 * copyRows(dst, dstOffset, dstStride, src, srcOffset, srcStride, rowBytes, rows) -> undefined
 *   Copies a rectangle of rows between two buffers of interleaved samples (assembling regions
 *   from cached decoded tiles: decoders/tiff/tile-blocks.ts). A JavaScript loop pays for a
 *   typed-array view per row (Buffer#copy makes one), which on regions of a thousand rows costs
 *   more than the copying; here it is one call. Bounds are checked; a bad call throws.
 *
 * Why it is written this way:
 * - The file is read through an OpenJPEG file stream, so only the main header and the
 *   tile-parts that the area needs are read (tiles outside are skipped by seeking).
 * - OpenJPEG's messages go to an error handler that keeps the first error for the rejection
 *   message; nothing is printed (the server owns stdout: FastCGI on fd 0/1).
 * - Strict mode: a truncated codestream is an error rather than silently grey pixels.
 * - Every path frees the codec, the stream and the image; the output buffer is handed to JS
 *   as an external buffer that frees itself.
 */

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <openjpeg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_LEN 512

typedef struct {
  /* inputs */
  char *path;
  /* decodeBuffer: the codestream in memory (path is NULL then) */
  uint8_t *mem;
  size_t mem_len;
  size_t mem_pos;
  int format;
  uint32_t reduce;
  uint32_t layers;
  int32_t x0, y0, x1, y1;
  uint32_t components;
  uint32_t bits;
  int ycc;
  int threads;
  uint32_t buffer_size;
  /* outputs */
  uint8_t *out;
  size_t out_len;
  uint32_t width, height, channels;
  char error[MSG_LEN];
  char warning[MSG_LEN];
  int failed;
  /* napi */
  napi_async_work work;
  napi_deferred deferred;
} DecodeJob;

static void on_error(const char *msg, void *data) {
  DecodeJob *job = (DecodeJob *)data;
  if (job->error[0] != '\0') return; /* keep the first, it names the cause */
  snprintf(job->error, MSG_LEN, "%s", msg);
  size_t n = strlen(job->error);
  while (n > 0 && (job->error[n - 1] == '\n' || job->error[n - 1] == '\r')) job->error[--n] = '\0';
}

static void on_warning(const char *msg, void *data) {
  DecodeJob *job = (DecodeJob *)data;
  if (job->warning[0] != '\0') return;
  snprintf(job->warning, MSG_LEN, "%s", msg);
  size_t n = strlen(job->warning);
  while (n > 0 && (job->warning[n - 1] == '\n' || job->warning[n - 1] == '\r')) job->warning[--n] = '\0';
}

static void on_info(const char *msg, void *data) {
  (void)msg;
  (void)data;
}

static void fail(DecodeJob *job, const char *what) {
  job->failed = 1;
  if (job->error[0] == '\0') snprintf(job->error, MSG_LEN, "%s", what);
}

/* Scales a sample of `prec` bits (already made unsigned) to `bits` (8 or 16) bits. */
static inline uint32_t scale_sample(int64_t v, uint32_t prec, uint32_t bits) {
  int64_t max_in = (prec >= 31) ? 0x7fffffff : (((int64_t)1 << prec) - 1);
  if (v < 0) v = 0;
  if (v > max_in) v = max_in;
  if (prec == bits) return (uint32_t)v;
  int64_t max_out = ((int64_t)1 << bits) - 1;
  if (prec > bits) return (uint32_t)(v >> (prec - bits));
  return (uint32_t)((v * max_out + max_in / 2) / max_in);
}

/* Sample of component c at output pixel (i, j), where the output grid is component 0's. */
static inline int32_t sample_at(const opj_image_t *img, uint32_t c, uint32_t i, uint32_t j) {
  const opj_image_comp_t *c0 = &img->comps[0];
  const opj_image_comp_t *cc = &img->comps[c];
  if (cc->dx == c0->dx && cc->dy == c0->dy && cc->w == c0->w && cc->h == c0->h) {
    return cc->data[(size_t)j * cc->w + i];
  }
  /* Subsampled component: nearest sample, aligned on the (reduced) reference grid. */
  uint64_t gx = ((uint64_t)c0->x0 + i) * c0->dx / cc->dx;
  uint64_t gy = ((uint64_t)c0->y0 + j) * c0->dy / cc->dy;
  int64_t x = (int64_t)gx - cc->x0;
  int64_t y = (int64_t)gy - cc->y0;
  if (x < 0) x = 0;
  if (y < 0) y = 0;
  if (x >= (int64_t)cc->w) x = (int64_t)cc->w - 1;
  if (y >= (int64_t)cc->h) y = (int64_t)cc->h - 1;
  return cc->data[(size_t)y * cc->w + (size_t)x];
}

/* Interleaves (and converts) the decoded components into job->out. */
static int interleave(DecodeJob *job, const opj_image_t *img) {
  uint32_t n = job->components;
  if (n < 1 || n > 4 || n > img->numcomps) {
    fail(job, "decoded image has fewer components than expected");
    return 0;
  }
  const opj_image_comp_t *c0 = &img->comps[0];
  for (uint32_t c = 0; c < n; c++) {
    if (img->comps[c].data == NULL || img->comps[c].w == 0 || img->comps[c].h == 0) {
      fail(job, "component was not decoded");
      return 0;
    }
  }
  uint32_t w = c0->w, h = c0->h;
  uint32_t bytes = job->bits == 16 ? 2 : 1;
  size_t len = (size_t)w * h * n * bytes;
  uint8_t *out = (uint8_t *)malloc(len ? len : 1);
  if (out == NULL) {
    fail(job, "out of memory for the decoded region");
    return 0;
  }
  int ycc = job->ycc && n >= 3;
  for (uint32_t j = 0; j < h; j++) {
    for (uint32_t i = 0; i < w; i++) {
      uint32_t px[4];
      if (ycc) {
        /* sYCC (IEC 61966-2-1 Amd 1) to RGB with opj_decompress's arithmetic (products
           truncated to int, then added), so that both give the same samples. */
        uint32_t prec = img->comps[0].prec;
        int32_t hi = (prec >= 31) ? 0x7fffffff : (int32_t)((1u << prec) - 1);
        int32_t off = (int32_t)(1u << (prec - 1));
        int32_t y = sample_at(img, 0, i, j) + (img->comps[0].sgnd ? off : 0);
        int32_t cb = sample_at(img, 1, i, j) - (img->comps[1].sgnd ? 0 : off);
        int32_t cr = sample_at(img, 2, i, j) - (img->comps[2].sgnd ? 0 : off);
        int32_t r = y + (int32_t)(1.402 * (float)cr);
        int32_t g = y - (int32_t)(0.344 * (float)cb + 0.714 * (float)cr);
        int32_t b = y + (int32_t)(1.772 * (float)cb);
        px[0] = scale_sample(r < 0 ? 0 : r > hi ? hi : r, prec, job->bits);
        px[1] = scale_sample(g < 0 ? 0 : g > hi ? hi : g, prec, job->bits);
        px[2] = scale_sample(b < 0 ? 0 : b > hi ? hi : b, prec, job->bits);
        for (uint32_t c = 3; c < n; c++) {
          const opj_image_comp_t *cc = &img->comps[c];
          int64_t v = sample_at(img, c, i, j);
          if (cc->sgnd) v += (int64_t)1 << (cc->prec - 1);
          px[c] = scale_sample(v, cc->prec, job->bits);
        }
      } else {
        for (uint32_t c = 0; c < n; c++) {
          const opj_image_comp_t *cc = &img->comps[c];
          int64_t v = sample_at(img, c, i, j);
          if (cc->sgnd) v += (int64_t)1 << (cc->prec - 1);
          px[c] = scale_sample(v, cc->prec, job->bits);
        }
      }
      size_t base = ((size_t)j * w + i) * n;
      if (bytes == 1) {
        for (uint32_t c = 0; c < n; c++) out[base + c] = (uint8_t)px[c];
      } else {
        uint16_t *o16 = (uint16_t *)out;
        for (uint32_t c = 0; c < n; c++) o16[base + c] = (uint16_t)px[c];
      }
    }
  }
  job->out = out;
  job->out_len = len;
  job->width = w;
  job->height = h;
  job->channels = n;
  return 1;
}

/* Memory stream over job->mem (OpenJPEG's read/skip/seek callbacks). */
static OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *user) {
  DecodeJob *job = (DecodeJob *)user;
  if (job->mem_pos >= job->mem_len) return (OPJ_SIZE_T)-1;
  size_t left = job->mem_len - job->mem_pos;
  if (n > left) n = left;
  memcpy(buf, job->mem + job->mem_pos, n);
  job->mem_pos += n;
  return n;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user) {
  DecodeJob *job = (DecodeJob *)user;
  if (n < 0) {
    if ((size_t)(-n) > job->mem_pos) return -1;
    job->mem_pos -= (size_t)(-n);
    return n;
  }
  if ((uint64_t)n > job->mem_len - job->mem_pos) {
    job->mem_pos = job->mem_len;
    return -1;
  }
  job->mem_pos += (size_t)n;
  return n;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T n, void *user) {
  DecodeJob *job = (DecodeJob *)user;
  if (n < 0 || (uint64_t)n > job->mem_len) return OPJ_FALSE;
  job->mem_pos = (size_t)n;
  return OPJ_TRUE;
}

static opj_stream_t *mem_stream(DecodeJob *job) {
  opj_stream_t *s = opj_stream_create(job->buffer_size, OPJ_TRUE);
  if (s == NULL) return NULL;
  opj_stream_set_user_data(s, job, NULL);
  opj_stream_set_user_data_length(s, (OPJ_UINT64)job->mem_len);
  opj_stream_set_read_function(s, mem_read);
  opj_stream_set_skip_function(s, mem_skip);
  opj_stream_set_seek_function(s, mem_seek);
  return s;
}

static void execute(napi_env env, void *data) {
  (void)env;
  DecodeJob *job = (DecodeJob *)data;
  opj_codec_t *codec = NULL;
  opj_stream_t *stream = NULL;
  opj_image_t *image = NULL;
  opj_dparameters_t params;

  stream = job->mem != NULL ? mem_stream(job) : opj_stream_create_file_stream(job->path, job->buffer_size, OPJ_TRUE);
  if (stream == NULL) {
    fail(job, job->mem != NULL ? "cannot create the memory stream" : "cannot open the file");
    goto done;
  }
  codec = opj_create_decompress(job->format == 0 ? OPJ_CODEC_J2K : OPJ_CODEC_JP2);
  if (codec == NULL) {
    fail(job, "cannot create the decoder");
    goto done;
  }
  opj_set_error_handler(codec, on_error, job);
  opj_set_warning_handler(codec, on_warning, job);
  opj_set_info_handler(codec, on_info, job);

  opj_set_default_decoder_parameters(&params);
  params.cp_reduce = job->reduce;
  params.cp_layer = job->layers;
  if (!opj_setup_decoder(codec, &params)) {
    fail(job, "cannot set up the decoder");
    goto done;
  }
  opj_decoder_set_strict_mode(codec, OPJ_TRUE);
  if (job->threads > 1 && opj_has_thread_support()) opj_codec_set_threads(codec, job->threads);

  if (!opj_read_header(stream, codec, &image)) {
    fail(job, "cannot read the header");
    goto done;
  }
  if (job->x1 > job->x0 && job->y1 > job->y0) {
    if (!opj_set_decode_area(codec, image, job->x0, job->y0, job->x1, job->y1)) {
      fail(job, "invalid decode area");
      goto done;
    }
  }
  if (!opj_decode(codec, stream, image)) {
    fail(job, "decoding failed");
    goto done;
  }
  /* No opj_end_decompress: for JP2 it walks the boxes after the codestream, which costs reads
     and adds nothing to the pixels. */
  interleave(job, image);

done:
  if (image != NULL) opj_image_destroy(image);
  if (codec != NULL) opj_destroy_codec(codec);
  if (stream != NULL) opj_stream_destroy(stream);
}

static void free_external(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void set_uint(napi_env env, napi_value obj, const char *key, uint32_t v) {
  napi_value x;
  napi_create_uint32(env, v, &x);
  napi_set_named_property(env, obj, key, x);
}

static void complete(napi_env env, napi_status status, void *data) {
  DecodeJob *job = (DecodeJob *)data;
  if (status != napi_ok && !job->failed) fail(job, "decode job was cancelled");
  if (job->failed || job->out == NULL) {
    napi_value msg, err, warn;
    napi_create_string_utf8(env, job->error[0] ? job->error : "decoding failed", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    if (job->warning[0]) {
      napi_create_string_utf8(env, job->warning, NAPI_AUTO_LENGTH, &warn);
      napi_set_named_property(env, err, "warning", warn);
    }
    free(job->out);
    napi_reject_deferred(env, job->deferred, err);
  } else {
    napi_value result, buf;
    if (napi_create_external_buffer(env, job->out_len, job->out, free_external, NULL, &buf) != napi_ok) {
      /* Runtimes that forbid external buffers: copy instead. */
      void *copy = NULL;
      napi_create_buffer_copy(env, job->out_len, job->out, &copy, &buf);
      free(job->out);
    }
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "data", buf);
    set_uint(env, result, "width", job->width);
    set_uint(env, result, "height", job->height);
    set_uint(env, result, "channels", job->channels);
    set_uint(env, result, "bits", job->bits);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_async_work(env, job->work);
  free(job->path);
  free(job->mem);
  free(job);
}

static int get_int(napi_env env, napi_value obj, const char *key, int32_t def, int32_t *out) {
  bool has = false;
  *out = def;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return 1;
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return 0;
  napi_typeof(env, v, &t);
  if (t == napi_undefined) return 1;
  if (t != napi_number) return 0;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value start_job(napi_env env, napi_callback_info info, int from_memory) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
  bool is_buffer = false;
  if (argc >= 1) napi_typeof(env, argv[0], &t0);
  if (argc >= 2) napi_typeof(env, argv[1], &t1);
  if (from_memory && argc >= 1) napi_is_buffer(env, argv[0], &is_buffer);
  if (from_memory ? (!is_buffer || t1 != napi_object) : (t0 != napi_string || t1 != napi_object)) {
    napi_throw_type_error(env, NULL, from_memory ? "Expected (codestream: Buffer, options: object)" : "Expected (path: string, options: object)");
    return NULL;
  }
  DecodeJob *job = (DecodeJob *)calloc(1, sizeof(DecodeJob));
  if (job == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (from_memory) {
    void *bytes = NULL;
    size_t n = 0;
    if (napi_get_buffer_info(env, argv[0], &bytes, &n) != napi_ok || n == 0) {
      free(job);
      napi_throw_type_error(env, NULL, "Expected a non-empty codestream buffer");
      return NULL;
    }
    job->mem = (uint8_t *)malloc(n);
    if (job->mem == NULL) {
      free(job);
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    memcpy(job->mem, bytes, n);
    job->mem_len = n;
  } else {
    size_t len = 0;
    napi_get_value_string_utf8(env, argv[0], NULL, 0, &len);
    job->path = (char *)malloc(len + 1);
    if (job->path == NULL) {
      free(job);
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    napi_get_value_string_utf8(env, argv[0], job->path, len + 1, &len);
  }

  int32_t format, reduce, layers, x0, y0, x1, y1, comps, bits, ycc, threads, bufsize;
  napi_value o = argv[1];
  int ok = get_int(env, o, "format", 1, &format) && get_int(env, o, "reduce", 0, &reduce) && get_int(env, o, "layers", 0, &layers) &&
           get_int(env, o, "x0", 0, &x0) && get_int(env, o, "y0", 0, &y0) && get_int(env, o, "x1", 0, &x1) &&
           get_int(env, o, "y1", 0, &y1) && get_int(env, o, "components", 1, &comps) && get_int(env, o, "bits", 8, &bits) &&
           get_int(env, o, "ycc", 0, &ycc) && get_int(env, o, "threads", 1, &threads) &&
           get_int(env, o, "bufferSize", 1 << 14, &bufsize);
  if (!ok || reduce < 0 || reduce > 32 || layers < 0 || x0 < 0 || y0 < 0 || x1 < 0 || y1 < 0 || comps < 1 || comps > 4 ||
      (bits != 8 && bits != 16) || threads < 1 || threads > 64 || bufsize < 4096) {
    free(job->path);
    free(job->mem);
    free(job);
    napi_throw_range_error(env, NULL, "Expected integer options within range for decode()");
    return NULL;
  }
  job->format = format;
  job->reduce = (uint32_t)reduce;
  job->layers = (uint32_t)layers;
  job->x0 = x0;
  job->y0 = y0;
  job->x1 = x1;
  job->y1 = y1;
  job->components = (uint32_t)comps;
  job->bits = (uint32_t)bits;
  job->ycc = ycc;
  job->threads = threads;
  job->buffer_size = (uint32_t)bufsize;

  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "iipsrv_openjpeg_decode", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free(job->path);
    free(job->mem);
    free(job);
    napi_throw_error(env, NULL, "cannot queue the decode job");
    return NULL;
  }
  return promise;
}

static napi_value decode(napi_env env, napi_callback_info info) { return start_job(env, info, 0); }

static napi_value decode_buffer(napi_env env, napi_callback_info info) { return start_job(env, info, 1); }

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_string_utf8(env, opj_version(), NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value copy_rows(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 8) {
    napi_throw_type_error(env, NULL, "copyRows: expected 8 arguments");
    return NULL;
  }
  void *dst = NULL;
  void *src = NULL;
  size_t dst_len = 0;
  size_t src_len = 0;
  if (napi_get_buffer_info(env, argv[0], &dst, &dst_len) != napi_ok || napi_get_buffer_info(env, argv[3], &src, &src_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "copyRows: dst and src must be Buffers");
    return NULL;
  }
  int64_t v[6];
  const int at[6] = {1, 2, 4, 5, 6, 7};
  for (int i = 0; i < 6; i++) {
    if (napi_get_value_int64(env, argv[at[i]], &v[i]) != napi_ok || v[i] < 0) {
      napi_throw_range_error(env, NULL, "copyRows: offsets, strides and sizes must be non-negative integers");
      return NULL;
    }
  }
  int64_t dst_off = v[0], dst_stride = v[1], src_off = v[2], src_stride = v[3], row_bytes = v[4], rows = v[5];
  if (rows == 0 || row_bytes == 0) return NULL;
  /* The last row's end, in 64-bit arithmetic (every term is below 2^53). */
  if (dst_off + (rows - 1) * dst_stride + row_bytes > (int64_t)dst_len || src_off + (rows - 1) * src_stride + row_bytes > (int64_t)src_len) {
    napi_throw_range_error(env, NULL, "copyRows: rectangle outside a buffer");
    return NULL;
  }
  unsigned char *d = (unsigned char *)dst + dst_off;
  const unsigned char *s = (const unsigned char *)src + src_off;
  for (int64_t r = 0; r < rows; r++) memmove(d + r * dst_stride, s + r * src_stride, (size_t)row_bytes);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "decode", NAPI_AUTO_LENGTH, decode, NULL, &fn);
  napi_set_named_property(env, exports, "decode", fn);
  napi_create_function(env, "decodeBuffer", NAPI_AUTO_LENGTH, decode_buffer, NULL, &fn);
  napi_set_named_property(env, exports, "decodeBuffer", fn);
  napi_create_function(env, "copyRows", NAPI_AUTO_LENGTH, copy_rows, NULL, &fn);
  napi_set_named_property(env, exports, "copyRows", fn);
  napi_create_function(env, "version", NAPI_AUTO_LENGTH, version, NULL, &fn);
  napi_set_named_property(env, exports, "version", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
