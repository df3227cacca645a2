package dev.ferrokeeper.compat.curator;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A test of this suite: a JUnit 5 {@code @Test} with a hard 60 s limit. The
 * limit is enforced from a separate thread, so a recipe that blocks in
 * uninterruptible code still fails the test instead of hanging the run.
 */
@Target(ElementType.METHOD)
@Retention(RetentionPolicy.RUNTIME)
@Test
@Timeout(value = 60, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
public @interface CuratorTest {
}
