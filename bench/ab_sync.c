/* ab_sync: dax_sync of several builds of libdaxpmem, interleaved with the oracle in one
 * process, for comparing a change against the build before it. This host's speed moves
 * in phases (the oracle of bench_sync between 130 and 300 us at k = 10 000): two builds
 * benchmarked one after the other can differ by more than the change; taking turns
 * round by round, each build and the oracle see the same phase.
 *   usage: DAXPMEM_FORCE_PMEM=1 bench/ab_sync K ROUNDS /path/a/libdaxpmem.so /path/b/lib.so
 * Each build maps its own 1 GiB file in /dev/shm. The paths must differ (copy a build
 * before rebuilding: cp target/release/libdaxpmem.so /tmp/old.so). Prints, per build,
 * the median sync time and the median of its per-round ratio to the oracle (the oracle
 * uses the first build's wb_cache_pmem/wmb_pmem on its mapping). Up to 4 builds. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
typedef void *(*map_t)(const char *, size_t, unsigned, unsigned);
typedef void *(*addr_t)(void *);
typedef int (*mark_t)(void *, const void *, size_t);
typedef int (*sync_t)(void *, const void *, size_t);
typedef void (*wb_t)(const void *, size_t);
typedef void (*wmb_t)(void);
static uint64_t s=88172645463325252ull;
static inline uint64_t nx(void){s^=s<<13;s^=s>>7;s^=s<<17;return s;}
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static double med(double*v,int n){qsort(v,n,8,cmp);return v[n/2];}
#define MAXV 4
int main(int argc,char**argv){
  if(argc<4||argc>3+MAXV){fprintf(stderr,"usage: ab_sync K ROUNDS LIB...\n");return 2;}
  size_t k=atol(argv[1]); int rounds=atoi(argv[2]); int nv=argc-3;
  if(!k||rounds<1){fprintf(stderr,"ab_sync: K and ROUNDS must be positive\n");return 2;}
  size_t len=1ull<<30;
  map_t mp[MAXV]; addr_t ad[MAXV]; mark_t mk[MAXV]; sync_t sy[MAXV]; wb_t wb=0; wmb_t wmb=0;
  void *m[MAXV]; char *b[MAXV];
  for(int v=0;v<nv;v++){
    void*h=dlopen(argv[3+v],RTLD_NOW|RTLD_LOCAL); if(!h){fprintf(stderr,"%s\n",dlerror());return 1;}
    mp[v]=dlsym(h,"dax_map"); ad[v]=dlsym(h,"dax_addr"); mk[v]=dlsym(h,"dax_mark_dirty"); sy[v]=dlsym(h,"dax_sync");
    if(!v){wb=dlsym(h,"wb_cache_pmem"); wmb=dlsym(h,"wmb_pmem");}
    char p[64]; snprintf(p,64,"/dev/shm/ab%d",v);
    m[v]=mp[v](p,len,1,0600); unlink(p); if(!m[v]){fprintf(stderr,"map fail\n");return 1;}
    b[v]=ad[v](m[v]); memset(b[v],1,len);
  }
  uint64_t*o=malloc(k*8);
  double *t[MAXV+1]; for(int v=0;v<=nv;v++)t[v]=malloc(rounds*8);
  double *rr[MAXV]; for(int v=0;v<nv;v++)rr[v]=malloc(rounds*8);
  for(int r=0;r<rounds;r++){
    for(int j=0;j<=nv;j++){
      int v=(j+r)%(nv+1);
      for(size_t i=0;i<k;i++)o[i]=(nx()%(len/64))*64;
      if(v<nv){
        for(size_t i=0;i<k;i++)mk[v](m[v],b[v]+o[i],64);
        for(size_t i=0;i<k;i++)memset(b[v]+o[i],r,64);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        double t0=now(); sy[v](m[v],NULL,0); t[v][r]=now()-t0;
      } else {
        for(size_t i=0;i<k;i++)memset(b[0]+o[i],r+1,64);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        double t0=now(); for(size_t i=0;i<k;i++)wb(b[0]+o[i],64); wmb(); t[nv][r]=now()-t0;
      }
    }
    for(int v=0;v<nv;v++)rr[v][r]=t[v][r]/t[nv][r];
  }
  printf("k=%zu oracle %.0f ns |",k,med(t[nv],rounds));
  for(int v=0;v<nv;v++)printf(" %s: %.0f ns x%.2f |",argv[3+v],med(t[v],rounds),med(rr[v],rounds));
  printf("\n");
  return 0;}
