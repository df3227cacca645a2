package dev.ferrokeeper.compat.curator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.apache.curator.x.discovery.details.ServiceCacheListener;
import org.apache.curator.x.discovery.strategies.RoundRobinStrategy;
import org.apache.zookeeper.data.Stat;

/** Service discovery (curator-x-discovery): register, query, unregister, session loss. */
class ServiceDiscoveryTest extends CompatBase {

    /** Instance payload, serialized as JSON. */
    public static class Endpoint {
        public String zone;
        public int weight;

        public Endpoint() {
        }

        Endpoint(String zone, int weight) {
            this.zone = zone;
            this.weight = weight;
        }
    }

    private ServiceDiscovery<Endpoint> discovery(CuratorFramework c) throws Exception {
        ServiceDiscovery<Endpoint> d = closeLater(ServiceDiscoveryBuilder.builder(Endpoint.class)
                .client(c)
                .basePath(base + "/services")
                .serializer(new JsonInstanceSerializer<>(Endpoint.class))
                .build());
        d.start();
        return d;
    }

    private static ServiceInstance<Endpoint> instance(String name, String id, int port, String zone) throws Exception {
        return ServiceInstance.<Endpoint>builder()
                .name(name)
                .id(id)
                .address("10.0.0." + (port % 200))
                .port(port)
                .payload(new Endpoint(zone, port % 7))
                .build();
    }

    private static Set<String> ids(Collection<ServiceInstance<Endpoint>> instances) {
        return instances.stream().map(ServiceInstance::getId).collect(Collectors.toCollection(TreeSet::new));
    }

    @CuratorTest
    void registerQueryUnregister() throws Exception {
        CuratorFramework c1 = newClient();
        CuratorFramework c2 = newClient();
        CuratorFramework observer = newClient();
        ServiceDiscovery<Endpoint> d1 = discovery(c1);
        ServiceDiscovery<Endpoint> d2 = discovery(c2);
        ServiceDiscovery<Endpoint> q = discovery(observer);

        ServiceInstance<Endpoint> web1 = instance("web", "web-1", 8081, "eu");
        ServiceInstance<Endpoint> web2 = instance("web", "web-2", 8082, "us");
        ServiceInstance<Endpoint> db1 = instance("db", "db-1", 5432, "eu");
        d1.registerService(web1);
        d1.registerService(db1);
        d2.registerService(web2);

        sync(observer);  // on an ensemble: the registrations were made through other servers
        assertEquals(Set.of("db", "web"), new HashSet<>(q.queryForNames()), "service names");
        assertEquals(Set.of("web-1", "web-2"), ids(q.queryForInstances("web")));
        assertEquals(Set.of("db-1"), ids(q.queryForInstances("db")));
        ServiceInstance<Endpoint> got = q.queryForInstance("web", "web-2");
        assertNotNull(got);
        assertEquals("10.0.0.82", got.getAddress());
        assertEquals(8082, got.getPort());
        assertEquals("us", got.getPayload().zone);
        assertEquals(web2.getRegistrationTimeUTC(), got.getRegistrationTimeUTC());
        assertNull(q.queryForInstance("web", "web-9"), "unknown id");

        // Registrations are ephemeral znodes owned by the registering session.
        Stat st = admin().checkExists().forPath(base + "/services/web/web-2");
        assertNotNull(st);
        assertEquals(c2.getZookeeperClient().getZooKeeper().getSessionId(), st.getEphemeralOwner(), "ephemeral owner");

        // A provider hands out both instances round robin.
        ServiceProvider<Endpoint> provider = closeLater(q.serviceProviderBuilder()
                .serviceName("web").providerStrategy(new RoundRobinStrategy<>()).build());
        provider.start();
        await("provider sees 2 instances", () -> {
            try {
                return provider.getAllInstances().size() == 2;
            } catch (Exception e) {
                return false;
            }
        });
        Set<String> handedOut = new HashSet<>();
        for (int i = 0; i < 4; i++) {
            handedOut.add(provider.getInstance().getId());
        }
        assertEquals(Set.of("web-1", "web-2"), handedOut, "round robin over both instances");

        // Update changes the payload in place.
        ServiceInstance<Endpoint> web1b = ServiceInstance.<Endpoint>builder()
                .name("web").id("web-1").address(web1.getAddress()).port(web1.getPort())
                .payload(new Endpoint("ap", 3)).registrationTimeUTC(web1.getRegistrationTimeUTC()).build();
        d1.updateService(web1b);
        sync(observer);
        assertEquals("ap", q.queryForInstance("web", "web-1").getPayload().zone, "updated payload");

        // Unregister removes exactly that instance.
        d1.unregisterService(web1b);
        sync(observer);
        assertEquals(Set.of("web-2"), ids(q.queryForInstances("web")));
        assertNull(q.queryForInstance("web", "web-1"));
        d1.unregisterService(db1);
        sync(observer);
        assertEquals(Set.of(), ids(q.queryForInstances("db")));
        await("provider sees 1 instance", () -> {
            try {
                return provider.getAllInstances().size() == 1;
            } catch (Exception e) {
                return false;
            }
        });
        assertEquals("web-2", provider.getInstance().getId());
    }

    @CuratorTest
    void instanceDisappearsWhenItsSessionCloses() throws Exception {
        CuratorFramework owner = newClient();
        CuratorFramework stays = newClient();
        CuratorFramework observer = newClient();
        ServiceDiscovery<Endpoint> dOwner = discovery(owner);
        ServiceDiscovery<Endpoint> dStays = discovery(stays);
        ServiceDiscovery<Endpoint> q = discovery(observer);
        dOwner.registerService(instance("api", "api-owner", 9001, "eu"));
        dStays.registerService(instance("api", "api-stays", 9002, "eu"));

        ServiceCache<Endpoint> cache = closeLater(q.serviceCacheBuilder().name("api").build());
        AtomicInteger changes = new AtomicInteger();
        cache.addListener(new ServiceCacheListener() {
            @Override
            public void cacheChanged() {
                changes.incrementAndGet();
            }

            @Override
            public void stateChanged(CuratorFramework client, ConnectionState newState) {
            }
        });
        sync(observer);  // the cache's initial load sees both registrations
        cache.start();
        assertEquals(Set.of("api-owner", "api-stays"), ids(cache.getInstances()), "cache after start");
        assertEquals(Set.of("api-owner", "api-stays"), ids(q.queryForInstances("api")));

        // The owner's client goes away without unregistering: its session is closed.
        int before = changes.get();
        owner.close();
        sync(observer);
        assertEquals(Set.of("api-stays"), ids(q.queryForInstances("api")),
                "instance gone right after its session was closed");
        await("service cache drops the instance", () -> ids(cache.getInstances()).equals(Set.of("api-stays")));
        assertTrue(changes.get() > before, "cache listener notified");
        assertEquals(List.of("api-stays"), admin().getChildren().forPath(base + "/services/api"));
    }
}
