# Tomcat 10 for one goscaler node, applied by the os_configuration action
# (`puppet apply` over SSH). goscaler passes the node's variables as facts:
#   goscaler_node  the node ID            goscaler_port  its service port
#   goscaler_host  its address            goscaler_cluster, goscaler_address, …
# and the action's `facts:` add:
#   tomcat_root               where node directories go (default /var/tmp/goscaler-tomcat)
#   tomcat_jmx_user           the user goscaler's jmx counters log in as
#   tomcat_jmx_password_file  a file on the node holding that user's password
#
# Every node gets its own CATALINA_BASE (<tomcat_root>/<node>) over Debian's
# tomcat10 (CATALINA_HOME /usr/share/tomcat10) and tomcat10-admin (the
# manager webapp, for /manager/jmxproxy), so several nodes can share a
# machine: the HTTP connector listens on the node's service port and the
# shutdown port is disabled (the node is stopped by its PID file).
# Applying it again changes nothing and leaves a running Tomcat alone.

$node = $facts['goscaler_node']
$host = $facts['goscaler_host']
$port = Integer($facts['goscaler_port'])
$root = $facts['tomcat_root'] ? {
  undef   => '/var/tmp/goscaler-tomcat',
  ''      => '/var/tmp/goscaler-tomcat',
  default => $facts['tomcat_root'],
}
$jmx_user = $facts['tomcat_jmx_user'] ? {
  undef   => 'goscaler-jmx',
  default => $facts['tomcat_jmx_user'],
}
$jmx_password = rstrip(file($facts['tomcat_jmx_password_file']))

$home    = '/usr/share/tomcat10'
$manager = '/usr/share/tomcat10-admin/manager'
$base    = "${root}/${node}"
$pid     = "${base}/tomcat.pid"

package { ['tomcat10', 'tomcat10-admin']:
  ensure => installed,
}

file { [$root, $base, "${base}/conf", "${base}/conf/Catalina", "${base}/conf/Catalina/localhost",
        "${base}/logs", "${base}/temp", "${base}/work", "${base}/webapps"]:
  ensure => directory,
  mode   => '0750',
}

['web.xml', 'catalina.properties', 'context.xml', 'logging.properties'].each |$f| {
  file { "${base}/conf/${f}":
    ensure  => link,
    target  => "${home}/etc/${f}",
    require => Package['tomcat10'],
  }
}

file { "${base}/conf/server.xml":
  mode    => '0640',
  content => @("XML"),
    <?xml version="1.0" encoding="UTF-8"?>
    <!-- Managed by goscaler's examples/tomcat/puppet/tomcat.pp for node ${node} -->
    <Server port="-1" shutdown="SHUTDOWN">
      <GlobalNamingResources>
        <Resource name="UserDatabase" auth="Container" type="org.apache.catalina.UserDatabase"
                  factory="org.apache.catalina.users.MemoryUserDatabaseFactory" pathname="conf/tomcat-users.xml"/>
      </GlobalNamingResources>
      <Service name="Catalina">
        <Connector port="${port}" address="${host}" protocol="HTTP/1.1" connectionTimeout="20000"/>
        <Engine name="Catalina" defaultHost="localhost">
          <Realm className="org.apache.catalina.realm.UserDatabaseRealm" resourceName="UserDatabase"/>
          <Host name="localhost" appBase="webapps" unpackWARs="true" autoDeploy="true" deployOnStartup="true"/>
        </Engine>
      </Service>
    </Server>
    | XML
}

file { "${base}/conf/tomcat-users.xml":
  mode      => '0600',
  show_diff => false,
  content   => @("XML"),
    <?xml version="1.0" encoding="UTF-8"?>
    <tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
      <role rolename="manager-jmx"/>
      <user username="${jmx_user}" password="${jmx_password}" roles="manager-jmx"/>
    </tomcat-users>
    | XML
}

file { "${base}/conf/Catalina/localhost/manager.xml":
  mode    => '0640',
  content => @("XML"),
    <?xml version="1.0" encoding="UTF-8"?>
    <Context docBase="${manager}" privileged="true" antiResourceLocking="false"/>
    | XML
  require => Package['tomcat10-admin'],
}

exec { "start tomcat ${node}":
  command     => "${home}/bin/catalina.sh start",
  unless      => "/bin/sh -c 'test -s ${pid} && kill -0 \$(cat ${pid})'",
  environment => ["CATALINA_HOME=${home}", "CATALINA_BASE=${base}", "CATALINA_PID=${pid}",
                  "CATALINA_TMPDIR=${base}/temp",
                  'CATALINA_OPTS=-Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1'],
  path        => ['/usr/local/bin', '/usr/bin', '/bin'],
  require     => File["${base}/conf/server.xml", "${base}/conf/tomcat-users.xml",
                      "${base}/conf/Catalina/localhost/manager.xml", "${base}/webapps"],
}
