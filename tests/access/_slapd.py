"""A throwaway OpenLDAP server (Debian's slapd) with the memberof and ppolicy overlays.

Generated slapd.conf in a temporary directory, loopback port, stopped at the
end. The directory holds people, a nested group structure and one account
locked the OpenLDAP way (ppolicy ``pwdAccountLockedTime``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.services import free_port

SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PW = "admin-secret-for-tests"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
PASSWORDS = {"rita": "rita-reads-images-1", "sam": "sam-coordinates-1", "lock": "lock-is-locked-1"}

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile {dir}/slapd.pid
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{admin}"
rootpw {admin_pw}
directory {dir}/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{suffix}"
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
"""


def _person(uid: str, name: str) -> str:
    return (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n"
        f"sn: {name.split()[-1]}\ndisplayName: {name}\nmail: {uid}@example.org\n"
        f"userPassword: {PASSWORDS[uid]}\n"
    )


def _group(cn: str, *members: str) -> str:
    lines = "".join(f"member: {m}\n" for m in members)
    return f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}"


LDIF = "\n".join(
    [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "o: Example\ndc: example\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: ou=policies,{SUFFIX}\nobjectClass: organizationalUnit\nou: policies\n",
        f"dn: cn=default,ou=policies,{SUFFIX}\nobjectClass: device\nobjectClass: pwdPolicy\n"
        "cn: default\npwdAttribute: userPassword\npwdLockout: TRUE\n",
        _person("rita", "Rita Reader"),
        _person("sam", "Sam Coordinator"),
        _person("lock", "Locked Person"),
        # rita is in "radiologists", which is itself in "trial1-readers" (nested)
        _group("radiologists", f"uid=rita,{PEOPLE}", f"uid=lock,{PEOPLE}"),
        _group("trial1-readers", f"cn=radiologists,{GROUPS}"),
        _group("site1-coordinators", f"uid=sam,{PEOPLE}"),
    ]
)
LOCK = (
    f"dn: uid=lock,{PEOPLE}\nchangetype: modify\nadd: pwdAccountLockedTime\n"
    "pwdAccountLockedTime: 000001010000Z\n"
)


@dataclass
class Slapd:
    url: str
    base: str = SUFFIX


@contextlib.contextmanager
def slapd(tmp: Path) -> Iterator[Slapd]:
    exe = shutil.which("slapd") or "/usr/sbin/slapd"
    (tmp / "db").mkdir(parents=True)
    conf = tmp / "slapd.conf"
    conf.write_text(CONF.format(dir=tmp, suffix=SUFFIX, admin=ADMIN_DN, admin_pw=ADMIN_PW))
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    log = (tmp / "slapd.log").open("wb")
    proc = subprocess.Popen(
        [exe, "-f", str(conf), "-h", f"{url}/", "-d", "0"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait(url, proc)
        auth = ["-x", "-H", url, "-D", ADMIN_DN, "-w", ADMIN_PW]
        subprocess.run(["ldapadd", *auth], input=LDIF.encode(), check=True, capture_output=True)
        subprocess.run(
            ["ldapmodify", *auth, "-e", "relax"],
            input=LOCK.encode(),
            check=True,
            capture_output=True,
        )
        yield Slapd(url)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited with {proc.returncode}")
        probe = subprocess.run(
            ["ldapsearch", "-x", "-H", url, "-b", "", "-s", "base", "(objectClass=*)"],
            capture_output=True,
        )
        if probe.returncode in (0, 32):
            return
        time.sleep(0.1)
    raise RuntimeError("slapd did not start")
