/* OpenSSL's libcrypto (Debian's libssl-dev): HMAC for webhook signatures. libcurl already maps it into the process. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
