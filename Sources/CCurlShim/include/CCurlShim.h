#ifndef ROLLBACKD_CCURLSHIM_H
#define ROLLBACKD_CCURLSHIM_H
#include <curl/curl.h>

/* curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic, which Swift cannot call.
   These are the typed, non-variadic wrappers rollbackd uses; one per argument type. */
CURLcode rbd_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode rbd_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode rbd_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode rbd_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode rbd_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode rbd_easy_setopt_write_callback(CURL *handle, size_t (*callback)(char *, size_t, size_t, void *));
CURLcode rbd_easy_setopt_header_callback(CURL *handle, size_t (*callback)(char *, size_t, size_t, void *));
CURLcode rbd_easy_setopt_read_callback(CURL *handle, size_t (*callback)(char *, size_t, size_t, void *));
CURLcode rbd_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode rbd_easy_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode rbd_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode rbd_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value);
CURLMcode rbd_multi_setopt_long(CURLM *handle, CURLMoption option, long value);
#endif
